package drift

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
	"github.com/fixity-dev/fixity/test/builders"
)

// denyImage is an admission check that denies one image: the replacement's verdict is what a
// phase test controls, not what a registry says.
type denyImage struct {
	image     string
	transient bool
	seen      []string
}

func (d *denyImage) CheckPod(_ context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	var out []admit.Violation
	for _, c := range req.Pod.Spec.Containers {
		d.seen = append(d.seen, c.Image)
		if c.Image == d.image {
			v := admit.New(p, "images.verify", c.Name, "image %q is not signed by enough trusted authorities", c.Image)
			v.Transient = d.transient
			out = append(out, v)
		}
	}
	return out
}

type fixture struct {
	r      *Reconciler
	events *events.FakeRecorder
	check  *denyImage
	clock  *clocktesting.FakeClock
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(objs...).
		WithIndex(&corev1.Pod{}, OwnerIndex, func(o client.Object) []string {
			if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
				return []string{string(ref.UID)}
			}
			return nil
		}).Build()
	f := &fixture{events: events.NewFakeRecorder(32), check: &denyImage{}, clock: clocktesting.NewFakeClock(time.Now())}
	f.r = &Reconciler{
		Client: c, APIReader: c, Matcher: &policy.Matcher{Reader: c}, Tracker: drift.NewTracker(),
		Checks: []admit.Check{f.check}, Events: f.events, Namespace: "fixity-system",
		Gate:   &remediation.Gate{Client: c, Reader: c, Namespace: "fixity-system", Timeout: time.Minute, Clock: f.clock},
		Census: &remediation.Census[types.NamespacedName]{},
	}
	return f
}

// drifted is a scope for pod, found drifted by p, as the detect and decide phases leave it.
func (f *fixture) drifted(t *testing.T, pod *corev1.Pod, p *fixityv1.ImmutabilityPolicy, owner *remediation.Owner) *scope {
	t.Helper()
	s := &scope{pod: pod, policies: []fixityv1.ImmutabilityPolicy{*p}, by: []*fixityv1.ImmutabilityPolicy{p}, owner: owner}
	s.state = drift.PodState{
		Findings:    map[string][]drift.Finding{p.Name: {{Check: fixityv1.CheckUnverified, Message: "not signed"}}},
		Generations: map[string]int64{p.Name: p.Generation},
	}
	s.changed = f.r.Tracker.Set(s.key(), s.state)
	return s
}

func (f *fixture) eventsSeen() []string {
	var out []string
	for {
		select {
		case e := <-f.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestAdmissiblePhase(t *testing.T) {
	ctx := context.Background()
	const unsigned = "registry.example/shop/old@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	for _, tc := range []struct {
		name      string
		template  string // image in the owner's template
		transient bool
		evict     bool // drift.evictUnadmittable
		want      reconcile.Kind
		held      bool
	}{
		{"the replacement would be admitted", builders.Image, false, false, reconcile.Continue, false},
		{"the replacement would be denied", unsigned, false, false, reconcile.Waiting, true},
		{"denied, but the policy says evict anyway", unsigned, false, true, reconcile.Continue, false},
		{"cannot be decided yet (registry down)", unsigned, true, false, reconcile.Waiting, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := builders.ReplicaSet("shop", "old-abc", 4, 4)
			rs.Spec.Template.Spec.Containers[0].Image = tc.template
			p := builders.Policy("production", func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.EvictUnadmittable = ptr.To(tc.evict) })
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
			f := newFixture(t, rs, p, ns)
			f.check.image, f.check.transient = unsigned, tc.transient
			owner, err := remediation.ReadOwner(ctx, f.r.APIReader, "shop", &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID})
			if err != nil {
				t.Fatal(err)
			}
			s := f.drifted(t, builders.Pod("shop", "old-abc-1", builders.OwnedBy(rs, "ReplicaSet")), p, owner)

			o := f.r.admissible(ctx, s)
			if o.Kind != tc.want {
				t.Fatalf("outcome = %+v, want kind %d", o, tc.want)
			}
			if len(f.check.seen) == 0 || f.check.seen[0] != tc.template {
				t.Fatalf("the check saw %v, not the owner's template", f.check.seen)
			}
			st, _ := f.r.Tracker.Get(s.key())
			if (st.Held != nil) != tc.held {
				t.Fatalf("held = %+v, want %t", st.Held, tc.held)
			}
			if !tc.held {
				return
			}
			if o.Reason != fixityv1.ReplacementWouldBeDeniedReason || st.Held.Reason != o.Reason ||
				!strings.Contains(st.Held.Message, "ReplicaSet shop/old-abc") || !strings.Contains(st.Held.Message, "sign the image or roll out a signed one") {
				t.Fatalf("outcome %+v, hold %+v: want the reason, the owner and the fix", o, st.Held)
			}
			if got := f.eventsSeen(); len(got) != 2 || !strings.Contains(got[0], fixityv1.EventReplacementWouldBeDenied) {
				t.Fatalf("events = %v, want one on the pod and one on the policy", got)
			}
			f.r.admissible(ctx, s)
			if got := f.eventsSeen(); len(got) != 0 {
				t.Fatalf("told again on the next look: %v", got)
			}
		})
	}
}

// A bare pod's replacement is its admitted spec: the image of its verified record, not one
// changed in place.
func TestAdmissiblePhaseJudgesABarePodByItsAdmittedSpec(t *testing.T) {
	ctx := context.Background()
	const changed = "registry.example/shop/other@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	p := builders.Policy("production")
	f := newFixture(t, p, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	f.check.image = changed
	pod := builders.Pod("shop", "solo", builders.Annotated(fixityv1.VerifiedAnnotation, `{"web":{"image":"`+builders.Image+`"}}`))
	pod.Spec.Containers[0].Image = changed
	if o := f.r.admissible(ctx, f.drifted(t, pod, p, nil)); o.Kind != reconcile.Continue {
		t.Fatalf("outcome = %+v: the admitted spec passes", o)
	}
	if f.check.seen[0] != builders.Image {
		t.Fatalf("judged %v, not the admitted image", f.check.seen)
	}
}

func TestGatePhase(t *testing.T) {
	ctx := context.Background()
	p := builders.Policy("production")
	t.Run("a StatefulSet goes from the highest ordinal down", func(t *testing.T) {
		ss := builders.ReplicaSet("shop", "db", 3, 3) // only its name and UID matter here
		owner := &remediation.Owner{Kind: "StatefulSet", Namespace: "shop", Name: "db", UID: ss.UID, Known: true, Ready: 3, Desired: 3}
		var pods []client.Object
		for _, n := range []string{"db-0", "db-1", "db-2"} {
			pods = append(pods, builders.Pod("shop", n, builders.OwnedBy(ss, "StatefulSet")))
		}
		f := newFixture(t, pods...)
		s0 := f.drifted(t, pods[0].(*corev1.Pod), p, owner)
		f.drifted(t, pods[2].(*corev1.Pod), p, owner)
		if o := f.r.gate(ctx, s0); o.Kind != reconcile.Waiting || !strings.Contains(o.Message, "db-2 first") {
			t.Fatalf("db-0 while db-2 is drifted: %+v", o)
		}
		if o := f.r.gate(ctx, f.drifted(t, pods[2].(*corev1.Pod), p, owner)); o.Kind != reconcile.Continue {
			t.Fatalf("db-2: %+v", o)
		}
	})
	t.Run("an owner that did not recover in time is reported stuck", func(t *testing.T) {
		rs := builders.ReplicaSet("shop", "web-abc", 3, 2)
		a := builders.Pod("shop", "web-abc-1", builders.OwnedBy(rs, "ReplicaSet"))
		b := builders.Pod("shop", "web-abc-2", builders.OwnedBy(rs, "ReplicaSet"))
		f := newFixture(t, rs, a, b)
		owner := &remediation.Owner{Kind: "ReplicaSet", Namespace: "shop", Name: rs.Name, UID: rs.UID, Known: true, Ready: 3, Desired: 3}
		gone := builders.Pod("shop", "web-abc-0")
		if err := f.r.Gate.Record(ctx, owner, gone, []corev1.Pod{*gone, *a, *b}); err != nil {
			t.Fatal(err)
		}
		owner.Ready = 2 // its replacement is never created
		s := f.drifted(t, a, p, owner)
		if o := f.r.gate(ctx, s); o.Kind != reconcile.Waiting || o.Reason != "" {
			t.Fatalf("within the timeout: %+v", o)
		}
		f.clock.Step(time.Minute)
		o := f.r.gate(ctx, s)
		st, _ := f.r.Tracker.Get(s.key())
		if o.Kind != reconcile.Waiting || o.Reason != fixityv1.ReplacementStuckReason || st.Held == nil || st.Held.Reason != fixityv1.ReplacementStuckReason {
			t.Fatalf("after the timeout: %+v, hold %+v", o, st.Held)
		}
		if got := f.eventsSeen(); len(got) != 2 || !strings.Contains(got[0], fixityv1.EventReplacementStuck) {
			t.Fatalf("events = %v", got)
		}
	})
}

// A pod whose owner is gone is left to the garbage collector: never replaced, and never taken
// for a bare pod to be recreated.
func TestDecidePhaseLeavesOrphansToTheGarbageCollector(t *testing.T) {
	ctx := context.Background()
	p := builders.Policy("production", func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.MaxDriftedPercent = ptr.To[int32](100) })
	rs := builders.ReplicaSet("shop", "web-abc", 1, 1) // not created: deleted already
	pod := builders.Pod("shop", "web-abc-1", builders.OwnedBy(rs, "ReplicaSet"))
	f := newFixture(t, p, pod, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	s := f.drifted(t, pod, p, nil)
	s.by = nil
	if o := f.r.decide(ctx, s); o.Kind != reconcile.Done || s.owner != nil {
		t.Fatalf("orphan: outcome %+v, owner %+v", o, s.owner)
	}
}

// Stamping the records again never wipes out a change in place that was already found.
func TestRestampKeepsAFoundSpecChange(t *testing.T) {
	ctx := context.Background()
	pod := builders.Pod("shop", "web", builders.Annotated(fixityv1.SpecHashAnnotation, "sha256:admitted"))
	f := newFixture(t, pod)
	f.r.Tracker.Set(client.ObjectKeyFromObject(pod), drift.PodState{
		Findings:    map[string][]drift.Finding{"prod": {{Check: fixityv1.CheckSpecChange, Message: "changed"}}},
		Generations: map[string]int64{"prod": 1},
	})
	if err := f.r.restamp(ctx, pod); err != nil { // Versions is nil: it would panic if consulted
		t.Fatal(err)
	}
	if pod.Annotations[fixityv1.SpecHashAnnotation] != "sha256:admitted" {
		t.Fatalf("the record was stamped again: %v", pod.Annotations)
	}
}

// The replace phase evicts through the Eviction API only: a refusal is retried with backoff and
// told, an accepted eviction is recorded for the owner's next pod and counted for the policy.
func TestReplacePhase(t *testing.T) {
	ctx := context.Background()
	p := builders.Policy("production")
	p.UID = "p-uid"
	rs := builders.ReplicaSet("shop", "web-abc", 2, 2)
	a := builders.Pod("shop", "web-abc-1", builders.OwnedBy(rs, "ReplicaSet"))
	b := builders.Pod("shop", "web-abc-2", builders.OwnedBy(rs, "ReplicaSet"))
	refuse := true
	f := newFixture(t, p, rs, a, b)
	c := interceptor.NewClient(f.r.Client.(client.WithWatch), interceptor.Funcs{
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			if sub != "eviction" {
				t.Fatalf("subresource %s", sub)
			}
			if refuse {
				err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
				err.ErrStatus.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause}}}
				return err
			}
			return c.Delete(ctx, obj)
		},
	})
	f.r.Client, f.r.Evictor = c, remediation.NewEvictor(c)
	f.r.Gate.Client = c
	f.r.Ledger = &remediation.Ledger{Client: c, Reader: c, Namespace: "fixity-system"}
	owner := &remediation.Owner{Kind: "ReplicaSet", Namespace: "shop", Name: rs.Name, UID: rs.UID, Known: true, Ready: 2, Desired: 2}
	s := f.drifted(t, a, p, owner)
	s.ownerPods = []corev1.Pod{*a, *b}

	if o := f.r.replace(ctx, s); o.Kind != reconcile.Waiting || o.After != remediation.EvictionRetry {
		t.Fatalf("refused by a budget: %+v", o)
	}
	if got := f.eventsSeen(); len(got) != 1 || !strings.Contains(got[0], fixityv1.EventEvictionBlocked) {
		t.Fatalf("events = %v", got)
	}
	refuse = false
	if o := f.r.replace(ctx, s); o.Kind != reconcile.Done {
		t.Fatalf("evicted: %+v", o)
	}
	if n, ok, err := remediation.Count(ctx, c, "fixity-system", p); err != nil || !ok || n != 1 {
		t.Fatalf("counted: %d, %t, %v", n, ok, err)
	}
	// The sibling waits: the ledger says web-abc-1 went and the owner has not got it back.
	sb := f.drifted(t, b, p, owner)
	if o := f.r.gate(ctx, sb); o.Kind != reconcile.Waiting {
		t.Fatalf("the next pod right after: %+v", o)
	}
}
