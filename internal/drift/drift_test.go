package drift

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func TestBreaker(t *testing.T) {
	p := &fixityv1.ImmutabilityPolicy{}
	for _, tc := range []struct {
		max              *int32
		matched, drifted int
		want             bool
	}{
		{nil, 0, 0, true},
		{nil, 4, 2, true},  // 50% is not over 50%
		{nil, 4, 3, false}, // 75%
		{ptr.To[int32](0), 10, 1, false},
		{ptr.To[int32](100), 3, 3, true},
		{ptr.To[int32](10), 100, 10, true},
		{ptr.To[int32](10), 100, 11, false},
	} {
		p.Spec.Drift.MaxDriftedPercent = tc.max
		if got, msg := Breaker(p, Counts{Matched: tc.matched, Drifted: tc.drifted, Inferred: tc.drifted}); got != tc.want {
			t.Errorf("max %v, %d of %d drifted: allowed = %t (%s), want %t", tc.max, tc.drifted, tc.matched, got, msg, tc.want)
		}
	}
	// Pods drifted only by a config change are facts, not inferences: they do not trip it.
	p.Spec.Drift.MaxDriftedPercent = nil
	if ok, msg := Breaker(p, Counts{Matched: 10, Drifted: 10, Inferred: 0}); !ok {
		t.Errorf("10 of 10 pods drifted by a config change tripped the breaker: %s", msg)
	}
}

func TestRunningDigest(t *testing.T) {
	hex := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for id, want := range map[string]string{
		"registry.example/shop/web@sha256:" + hex:                   "sha256:" + hex,
		"docker-pullable://registry.example/shop/web@sha256:" + hex: "sha256:" + hex,
		"docker.io/library/other-name@sha256:" + hex:                "sha256:" + hex,
		"docker://sha256:" + hex:                                    "",
		"":                                                          "",
		"registry.example/shop/web:1.0":                             "",
		"registry.example/shop/web@sha256:short":                    "",
	} {
		got, ok := RunningDigest(id)
		if got != want || ok != (want != "") {
			t.Errorf("RunningDigest(%q) = %q, %t; want %q", id, got, ok, want)
		}
	}
}

func TestTrackerCounts(t *testing.T) {
	var changed [][]string
	tr := NewTracker()
	tr.OnChange = func(p []string) { changed = append(changed, p) }
	a, b := types.NamespacedName{Namespace: "shop", Name: "a"}, types.NamespacedName{Namespace: "shop", Name: "b"}
	drifted := PodState{Findings: map[string][]Finding{"prod": {{Check: fixityv1.CheckSpecChange, Message: "x"}}, "audit": nil}}
	clean := PodState{Findings: map[string][]Finding{"prod": nil}}
	if !tr.Set(a, drifted) || !tr.Set(b, clean) {
		t.Fatal("first Set must report a change")
	}
	if tr.Set(b, clean) {
		t.Error("setting the same state reported a change")
	}
	config := types.NamespacedName{Namespace: "shop", Name: "config"}
	tr.Set(config, PodState{Findings: map[string][]Finding{"prod": {{Check: fixityv1.CheckConfigChange, Message: "y"}}}})
	if c := tr.Counts("prod"); c != (Counts{Matched: 3, Drifted: 2, Inferred: 1}) {
		t.Errorf("prod: %+v, want 3 matched, 2 drifted, 1 of them by inference", c)
	}
	if c := tr.Counts("audit"); c != (Counts{Matched: 1}) {
		t.Errorf("audit: %+v", c)
	}
	tr.Forget(a)
	tr.Forget(config)
	if c := tr.Counts("prod"); c != (Counts{Matched: 1}) {
		t.Errorf("after Forget: %+v", c)
	}
	if len(changed) != 5 {
		t.Errorf("OnChange calls = %v", changed)
	}
}
