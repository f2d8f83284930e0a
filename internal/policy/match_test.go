package policy

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pol(name string, m fixityv1.PolicyMatch) *fixityv1.ImmutabilityPolicy {
	return &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: fixityv1.ImmutabilityPolicySpec{Match: m}}
}

func TestMatches(t *testing.T) {
	enforce := &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": "true"}}
	web := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}
	cases := []struct {
		name  string
		match fixityv1.PolicyMatch
		ns    *corev1.Namespace
		pod   map[string]string
		want  bool
	}{
		{"empty match selects everything", fixityv1.PolicyMatch{}, ns("shop", nil), nil, true},
		{"kube-system is always excluded", fixityv1.PolicyMatch{}, ns("kube-system", nil), nil, false},
		{"kube-public is always excluded", fixityv1.PolicyMatch{}, ns("kube-public", nil), nil, false},
		{"kube-node-lease is always excluded", fixityv1.PolicyMatch{}, ns("kube-node-lease", nil), nil, false},
		{"the operator is always excluded", fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{}}, ns(fixityv1.OperatorNamespace, nil), nil, false},
		{"fixity-system is an ordinary namespace when the operator runs elsewhere", fixityv1.PolicyMatch{}, ns(fixityv1.OperatorNamespace, nil), nil, true},
		{"excludeNamespaces", fixityv1.PolicyMatch{ExcludeNamespaces: []string{"sandbox"}}, ns("sandbox", nil), nil, false},
		{"namespace selector matches", fixityv1.PolicyMatch{NamespaceSelector: enforce}, ns("shop", map[string]string{"fixity.dev/enforce": "true"}), nil, true},
		{"namespace selector does not match", fixityv1.PolicyMatch{NamespaceSelector: enforce}, ns("shop", nil), nil, false},
		{"pod selector matches", fixityv1.PolicyMatch{PodSelector: web}, ns("shop", nil), map[string]string{"app": "web"}, true},
		{"pod selector does not match", fixityv1.PolicyMatch{PodSelector: web}, ns("shop", nil), map[string]string{"app": "db"}, false},
		{"both selectors must match", fixityv1.PolicyMatch{NamespaceSelector: enforce, PodSelector: web}, ns("shop", nil), map[string]string{"app": "web"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Matcher{}
			if strings.Contains(tc.name, "runs elsewhere") {
				m.OperatorNamespace = "security"
			}
			got, err := m.Matches(pol("p", tc.match), tc.ns, tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMatchesNamesTheBrokenSelector(t *testing.T) {
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near", Values: []string{"web"}}}}
	_, err := (&Matcher{}).Matches(pol("prod", fixityv1.PolicyMatch{PodSelector: bad}), ns("shop", nil), nil)
	if err == nil || err.Error()[:len("policy prod: spec.match.podSelector")] != "policy prod: spec.match.podSelector" {
		t.Fatalf("want an error naming policy prod and spec.match.podSelector, got %v", err)
	}
	_, err = (&Matcher{}).Matches(pol("prod", fixityv1.PolicyMatch{NamespaceSelector: bad}), ns("shop", nil), nil)
	if err == nil {
		t.Fatal("a broken namespaceSelector must be an error, not a non-match")
	}
}

func TestMatcherForPod(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := fixityv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		ns("shop", map[string]string{"team": "shop"}),
		pol("b-shop", fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}}),
		pol("a-all", fixityv1.PolicyMatch{}),
		pol("c-other", fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "other"}}}),
	).Build()
	m := &Matcher{Reader: c}
	got, err := m.ForPod(context.Background(), "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a-all" || got[1].Name != "b-shop" {
		t.Fatalf("want [a-all b-shop] in name order, got %v", names(got))
	}
	// A namespace that cannot be read is an error (callers deny), never "no policy".
	if _, err := m.ForPod(context.Background(), "missing", nil); err == nil {
		t.Fatal("want an error for an unreadable namespace")
	}
}

func names(ps []fixityv1.ImmutabilityPolicy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestTheOperatorsNamespaceComesFromConfiguration(t *testing.T) {
	m := &Matcher{OperatorNamespace: "security"}
	for ns, want := range map[string]bool{"security": true, "kube-system": true, "kube-public": true, "kube-node-lease": true, "fixity-system": false, "shop": false} {
		if got := m.Excluded(ns); got != want {
			t.Errorf("Excluded(%q) = %t, want %t", ns, got, want)
		}
	}
	if got := AlwaysExcludedNamespaces(""); !slices.Contains(got, fixityv1.OperatorNamespace) {
		t.Errorf("AlwaysExcludedNamespaces(\"\") = %v, want fixity-system among them", got)
	}
}

// Parsed selectors are kept per policy generation: a changed selector (a new generation) is
// parsed again, never matched by the old one, and a policy built by hand is never cached.
func TestMatchesFollowsTheSelectorOfEachGeneration(t *testing.T) {
	m := &Matcher{}
	for _, step := range []struct {
		uid        types.UID
		generation int64
		selects    string
	}{
		{"uid-1", 1, "web"},
		{"uid-1", 1, "web"},
		{"uid-1", 2, "db"},
		{"", 0, "web"},
		{"", 0, "db"},
	} {
		p := pol("p", fixityv1.PolicyMatch{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": step.selects}}})
		p.UID, p.Generation = step.uid, step.generation
		for _, app := range []string{"web", "db"} {
			got, err := m.Matches(p, ns("shop", nil), map[string]string{"app": app})
			if err != nil {
				t.Fatal(err)
			}
			if want := app == step.selects; got != want {
				t.Fatalf("policy %s generation %d selecting app=%s: Matches(app=%s) = %v, want %v", step.uid, step.generation, step.selects, app, got, want)
			}
		}
	}
}
