package grants

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

var created = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func grant(name, requester string, access []fixityv1.AccessKind, pods ...string) *fixityv1.AccessGrant {
	return &fixityv1.AccessGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, CreationTimestamp: metav1.NewTime(created),
			Annotations: map[string]string{RequesterAnnotation: requester}},
		Spec: fixityv1.AccessGrantSpec{Pods: pods, Access: access, Duration: &metav1.Duration{Duration: 15 * time.Minute}, Reason: "INC-1234: checkout"},
	}
}

func finder(t *testing.T, at time.Time, objs ...*fixityv1.AccessGrant) *Finder {
	t.Helper()
	s := runtime.NewScheme()
	if err := fixityv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	return &Finder{Reader: b.Build(), Clock: clocktesting.NewFakePassiveClock(at)}
}

func TestFind(t *testing.T) {
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}}}
	exec := []fixityv1.AccessKind{fixityv1.AccessExec}
	during, after := created.Add(time.Minute), created.Add(16*time.Minute)

	cases := []struct {
		name   string
		grants []*fixityv1.AccessGrant
		at     time.Time
		user   string
		access fixityv1.AccessKind
		found  string // grant name, or "" with why containing wantWhy
		why    string
	}{
		{"requester within duration", []*fixityv1.AccessGrant{grant("g", "alice", exec, "web-0")}, during, "alice", fixityv1.AccessExec, "g", ""},
		{"someone else's grant", []*fixityv1.AccessGrant{grant("g", "alice", exec, "web-0")}, during, "bob", fixityv1.AccessExec, "", "grant shop/g belongs to alice, not bob"},
		{"expired", []*fixityv1.AccessGrant{grant("g", "alice", exec, "web-0")}, after, "alice", fixityv1.AccessExec, "", "grant shop/g ended at 2026-11-22T10:15:00Z"},
		{"other access kind", []*fixityv1.AccessGrant{grant("g", "alice", exec, "web-0")}, during, "alice", fixityv1.AccessDebug, "", "grant shop/g does not include Debug"},
		{"other pod", []*fixityv1.AccessGrant{grant("g", "alice", exec, "db-0")}, during, "alice", fixityv1.AccessExec, "", "no AccessGrant of alice covers pod web-0 for Exec"},
		{"no requester recorded", []*fixityv1.AccessGrant{grant("g", "", exec, "web-0")}, during, "", fixityv1.AccessExec, "", "ended"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, why, err := finder(t, tc.at, tc.grants...).Find(context.Background(), web, tc.user, tc.access)
			if err != nil {
				t.Fatal(err)
			}
			if tc.found != "" {
				if g == nil || g.Name != tc.found {
					t.Fatalf("want grant %s, got %v (%s)", tc.found, g, why)
				}
				return
			}
			if g != nil {
				t.Fatalf("want no grant, got %s", g.Name)
			}
			if !strings.Contains(why, tc.why) {
				t.Fatalf("why = %q, want it to contain %q", why, tc.why)
			}
		})
	}
}

func TestCoversBySelector(t *testing.T) {
	g := grant("g", "alice", []fixityv1.AccessKind{fixityv1.AccessExec})
	g.Spec.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}}}
	db := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-0", Labels: map[string]string{"app": "db"}}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "web-1", Labels: map[string]string{"app": "web"}}}
	for pod, want := range map[*corev1.Pod]bool{web: true, db: false, other: false} {
		got, err := Covers(g, pod, fixityv1.AccessExec)
		if err != nil || got != want {
			t.Errorf("Covers(%s/%s) = %v, %v; want %v", pod.Namespace, pod.Name, got, err, want)
		}
	}
}

func TestTaintGrantReadsTaintValue(t *testing.T) {
	g := &fixityv1.AccessGrant{}
	g.Namespace, g.Name = "shop", "inc-1234"
	v := TaintValue(g, fixityv1.AccessSession{Pod: "web", Access: fixityv1.AccessExec, User: "alice"})
	nn, ok := TaintGrant(v)
	if !ok || nn.Namespace != "shop" || nn.Name != "inc-1234" {
		t.Fatalf("TaintGrant(%q) = %v, %t", v, nn, ok)
	}
	for _, bad := range []string{"", "InteractiveAccess: exec by alice", "x under grant noslash", "x under grant /name"} {
		if _, ok := TaintGrant(bad); ok {
			t.Errorf("TaintGrant(%q) succeeded", bad)
		}
	}
}

func approval(name, approver, grantName, grantUID string, at time.Time) fixityv1.AccessApproval {
	return fixityv1.AccessApproval{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, CreationTimestamp: metav1.NewTime(at),
			Annotations: map[string]string{fixityv1.ApproverAnnotation: approver, fixityv1.ApprovedGrantUIDAnnotation: grantUID}},
		Spec: fixityv1.AccessApprovalSpec{Grant: grantName},
	}
}

// Only approvals made for this grant (name and UID), by someone other than its requester, count,
// each approver once, oldest first.
func TestCountApprovals(t *testing.T) {
	g := grant("g", "alice", []fixityv1.AccessKind{fixityv1.AccessExec}, "web-0")
	g.UID = "uid-g"
	at := func(m int) time.Time { return created.Add(time.Duration(m) * time.Minute) }
	unrecorded := approval("unrecorded", "", "g", "uid-g", at(1))
	unrecorded.Annotations = nil
	got := CountApprovals(g, []fixityv1.AccessApproval{
		approval("carol-1", "carol", "g", "uid-g", at(3)),
		approval("self", "alice", "g", "uid-g", at(1)),
		approval("bob-1", "bob", "g", "uid-g", at(2)),
		approval("bob-2", "bob", "g", "uid-g", at(4)),
		approval("earlier-grant", "dave", "g", "uid-old", at(1)),
		approval("other-grant", "erin", "h", "uid-g", at(1)),
		unrecorded,
	})
	var names []string
	for _, a := range got {
		names = append(names, a.User+"/"+a.Approval)
	}
	if want := []string{"bob/bob-1", "carol/carol-1"}; !slices.Equal(names, want) {
		t.Fatalf("CountApprovals = %v, want %v", names, want)
	}
}

// A grant needing approvals is Pending until it has them, for at most an hour, and then runs for
// its duration from the approval that completed them.
func TestEvaluate(t *testing.T) {
	g := grant("g", "alice", []fixityv1.AccessKind{fixityv1.AccessExec}, "web-0") // 15m
	approved := func(ms ...int) []fixityv1.GrantApproval {
		var out []fixityv1.GrantApproval
		for _, m := range ms {
			out = append(out, fixityv1.GrantApproval{User: "u" + strconv.Itoa(m), At: metav1.NewTime(created.Add(time.Duration(m) * time.Minute))})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		approvals []fixityv1.GrantApproval
		required  int32
		at        time.Duration
		phase     fixityv1.GrantPhase
		expires   time.Duration
	}{
		{"no approvals needed", nil, 0, time.Minute, fixityv1.GrantActive, 15 * time.Minute},
		{"no approvals needed, ended", nil, 0, 15 * time.Minute, fixityv1.GrantExpired, 15 * time.Minute},
		{"waiting", approved(5), 2, 30 * time.Minute, fixityv1.GrantPending, time.Hour},
		{"never approved", nil, 1, time.Hour, fixityv1.GrantExpired, time.Hour},
		{"approved: duration from the last approval needed", approved(5, 40), 2, 50 * time.Minute, fixityv1.GrantActive, 55 * time.Minute},
		{"approved, ended", approved(5, 40), 2, 55 * time.Minute, fixityv1.GrantExpired, 55 * time.Minute},
		{"more approvals than needed count from the one that completed them", approved(5, 40), 1, 19 * time.Minute, fixityv1.GrantActive, 20 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Evaluate(g, tc.approvals, tc.required, created.Add(tc.at))
			if st.Phase != tc.phase || !st.ExpiresAt.Equal(created.Add(tc.expires)) {
				t.Fatalf("Evaluate = %s until %s, want %s until %s", st.Phase, st.ExpiresAt, tc.phase, created.Add(tc.expires))
			}
		})
	}
}
