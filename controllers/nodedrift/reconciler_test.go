package nodedrift

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/remediation"
	"github.com/fixity-dev/fixity/test/builders"
)

type fixture struct {
	r      *Reconciler
	c      client.Client
	events *events.FakeRecorder
	// nodeDeletes counts attempts to delete a Node: there must never be one.
	nodeDeletes int
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	f := &fixture{events: events.NewFakeRecorder(64)}
	f.c = fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(objs...).
		WithStatusSubresource(&fixityv1.NodeBaseline{}, &corev1.Node{}).
		WithIndex(&corev1.Pod{}, NodeNameIndex, func(o client.Object) []string { return []string{o.(*corev1.Pod).Spec.NodeName} }).
		WithInterceptorFuncs(interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			if _, ok := o.(*corev1.Node); ok {
				f.nodeDeletes++
			}
			return c.Delete(ctx, o, opts...)
		}}).Build()
	f.r = &Reconciler{
		Client: f.c, APIReader: f.c, Tracker: &nodedrift.Tracker{}, Census: &remediation.Census[string]{},
		Evictor: remediation.NewEvictor(f.c), Ledger: &remediation.Ledger{Client: f.c, Reader: f.c, Namespace: "fixity-system"},
		Events: f.events, Clock: clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)), Namespace: "fixity-system",
	}
	return f
}

func (f *fixture) reconcile(t *testing.T, node string) ctrl.Result {
	t.Helper()
	res, err := f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: node}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", node, err)
	}
	return res
}

func (f *fixture) baseline(t *testing.T, node string) *fixityv1.NodeBaseline {
	t.Helper()
	b := &fixityv1.NodeBaseline{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: node}, b); err != nil {
		t.Fatalf("baseline of %s: %v", node, err)
	}
	return b
}

func (f *fixture) node(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) setKernel(t *testing.T, name, v string) {
	t.Helper()
	n := f.node(t, name)
	n.Status.NodeInfo.KernelVersion = v
	if err := f.c.Status().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if got := f.node(t, name).Status.NodeInfo.KernelVersion; got != v {
		t.Fatalf("kernel %q", got)
	}
}

func cordonAction(s *fixityv1.NodeImmutabilityPolicySpec) {
	s.Action = fixityv1.NodeCordon
	s.MaxDriftedPercent = ptr.To[int32](100)
}

func TestBaselineIsRecordedWhenTheNodeIsFirstReady(t *testing.T) {
	notReady := builders.Node("b", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse })
	f := newFixture(t, builders.Node("a"), notReady, builders.NodePolicy("p"))
	f.reconcile(t, "a")
	b := f.baseline(t, "a")
	if b.Spec.NodeInfo.KernelVersion != "6.1.0-28-cloud-amd64" || b.Spec.NodeUID != "uid-a" || b.OwnerReferences[0].Kind != "Node" || b.Status.Phase != fixityv1.NodeClean {
		t.Fatalf("baseline %+v", b)
	}
	f.reconcile(t, "b")
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: "b"}, &fixityv1.NodeBaseline{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a node not Ready yet is not recorded: %v", err)
	}
}

func TestBaselineOfAnOlderFormatIsRecordedAgainNotCompared(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.NodePolicy("p", cordonAction))
	f.reconcile(t, "a")
	b := f.baseline(t, "a")
	// As an older operator would have left it: another format, another kernel.
	if err := f.c.Delete(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	old := b.DeepCopy()
	old.ResourceVersion, old.Spec.FormatVersion, old.Spec.NodeInfo.KernelVersion = "", 0, "5.10"
	if err := f.c.Create(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "a") // removes it
	f.reconcile(t, "a") // records again
	if b := f.baseline(t, "a"); b.Spec.FormatVersion != fixityv1.BaselineFormatVersion || b.Spec.NodeInfo.KernelVersion != "6.1.0-28-cloud-amd64" || b.Status.Phase != fixityv1.NodeClean {
		t.Fatalf("baseline %+v", b.Spec)
	}
	if f.node(t, "a").Spec.Unschedulable {
		t.Fatal("an upgrade of the operator must not disrupt a node")
	}
}

func TestCordonRecordsTheIntentThenCordons(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.NodePolicy("p", cordonAction))
	f.reconcile(t, "a")
	f.setKernel(t, "a", "6.1.0-29-cloud-amd64")
	f.reconcile(t, "a")
	b := f.baseline(t, "a")
	if b.Status.Phase != fixityv1.NodeCordoned || strings.Join(b.Status.Policies, ",") != "p" || b.Status.DisruptedAt == nil {
		t.Fatalf("status %+v", b.Status)
	}
	if b.Labels[fixityv1.DisruptedLabel] != "true" || b.Annotations[fixityv1.SavedPoliciesAnnotation] != "p" {
		t.Fatalf("the budgets' record is missing: %v %v", b.Labels, b.Annotations)
	}
	if len(b.Status.Drifted) != 1 || b.Status.Drifted[0].Recorded != "6.1.0-28-cloud-amd64" || b.Status.Drifted[0].Observed != "6.1.0-29-cloud-amd64" {
		t.Fatalf("findings %+v", b.Status.Drifted)
	}
	n := f.node(t, "a")
	if !n.Spec.Unschedulable || n.Spec.Taints[len(n.Spec.Taints)-1].Key != fixityv1.DriftedTaint {
		t.Fatalf("node not cordoned and tainted: %+v", n.Spec)
	}
	if f.nodeDeletes != 0 {
		t.Fatal("a Node is never deleted")
	}
}

func TestBudgetHoldsTheNextNode(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.Node("b"), builders.Node("c"), builders.NodePolicy("p", cordonAction))
	for _, n := range []string{"a", "b", "c"} {
		f.reconcile(t, n)
	}
	f.setKernel(t, "a", "x")
	f.setKernel(t, "b", "x")
	f.reconcile(t, "a")
	res := f.reconcile(t, "b")
	b := f.baseline(t, "b")
	if b.Status.Phase != fixityv1.NodeDrifted || !strings.HasPrefix(b.Status.Message, fixityv1.BudgetExhaustedReason+": [policy p] 1 of 1 nodes already cordoned") || res.RequeueAfter == 0 {
		t.Fatalf("second node: %+v, %+v", b.Status, res)
	}
	if f.node(t, "b").Spec.Unschedulable {
		t.Fatal("the second node is held by the budget")
	}
	// A restart forgets everything in memory; the budget still holds (it is counted from the
	// baselines).
	f.r.Tracker, f.r.Census = &nodedrift.Tracker{}, &remediation.Census[string]{}
	for _, n := range []string{"c", "a", "b"} {
		f.reconcile(t, n)
	}
	if f.node(t, "b").Spec.Unschedulable {
		t.Fatal("after a restart the budget still holds")
	}
}

func TestBreakerAndCensus(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.Node("b"), builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action, s.MaxDriftedPercent = fixityv1.NodeCordon, ptr.To[int32](20)
	}))
	f.reconcile(t, "a")
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a")
	if b := f.baseline(t, "a"); b.Status.Phase != fixityv1.NodeDrifted || f.node(t, "a").Spec.Unschedulable {
		t.Fatalf("not every node has been looked at: wait, %+v", b.Status)
	}
	f.reconcile(t, "b")
	f.reconcile(t, "a")
	if b := f.baseline(t, "a"); !strings.HasPrefix(b.Status.Message, fixityv1.TooManyDriftedReason) || f.node(t, "a").Spec.Unschedulable {
		t.Fatalf("1 of 2 is over 20%%: held, %+v", b.Status)
	}
}

func TestReportAndAuditTouchNothing(t *testing.T) {
	for name, edit := range map[string]func(*fixityv1.NodeImmutabilityPolicySpec){
		"report": func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Action = fixityv1.NodeReport },
		"audit":  func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Mode = fixityv1.ModeAudit },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, builders.Node("a"), builders.NodePolicy("p", edit))
			f.reconcile(t, "a")
			f.setKernel(t, "a", "x")
			f.reconcile(t, "a")
			if b := f.baseline(t, "a"); b.Status.Phase != fixityv1.NodeDrifted || !strings.Contains(b.Status.Message, "reported only") {
				t.Fatalf("status %+v", b.Status)
			}
			if n := f.node(t, "a"); n.Spec.Unschedulable || len(n.Spec.Taints) != 0 {
				t.Fatalf("node touched: %+v", n.Spec)
			}
		})
	}
}

func TestDrainStopsAtABarePodItCannotRecreate(t *testing.T) {
	bare := builders.Pod("shop", "lonely", func(p *corev1.Pod) { p.Spec.NodeName = "a" })
	f := newFixture(t, builders.Node("a"), bare, builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action, s.MaxDriftedPercent = fixityv1.NodeDrain, ptr.To[int32](100)
		s.DrainTimeout = &metav1.Duration{Duration: time.Minute}
	}))
	f.reconcile(t, "a")
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a")
	b := f.baseline(t, "a")
	if b.Status.Phase != fixityv1.NodeDraining || !strings.Contains(b.Status.Message, "pod shop/lonely has no owner") {
		t.Fatalf("status %+v", b.Status)
	}
	if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(bare), &corev1.Pod{}); err != nil {
		t.Fatalf("the bare pod is kept: %v", err)
	}
	f.r.Clock.(*clocktesting.FakeClock).Step(2 * time.Minute)
	f.reconcile(t, "a")
	if b := f.baseline(t, "a"); b.Status.Phase != fixityv1.NodeDrainStuck {
		t.Fatalf("after drainTimeout: %+v", b.Status)
	}
}

func TestAuditMidDrainKeepsTheCordonAndEvictsNothing(t *testing.T) {
	rs := builders.ReplicaSet("shop", "web", 1, 1)
	pod := builders.Pod("shop", "web-1", builders.OwnedBy(rs, "ReplicaSet"), func(p *corev1.Pod) { p.Spec.NodeName = "a" })
	policy := builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action, s.MaxDriftedPercent = fixityv1.NodeCordon, ptr.To[int32](100)
	})
	f := newFixture(t, builders.Node("a"), pod, policy)
	f.reconcile(t, "a")
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a") // cordoned
	p := &fixityv1.NodeImmutabilityPolicy{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: "p"}, p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Action, p.Spec.Mode = fixityv1.NodeDrain, fixityv1.ModeAudit
	if err := f.c.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "a")
	if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(pod), &corev1.Pod{}); err != nil {
		t.Fatalf("Audit is the brake: nothing is evicted: %v", err)
	}
	if b := f.baseline(t, "a"); !strings.Contains(b.Status.Message, "Kept cordoned") || !f.node(t, "a").Spec.Unschedulable {
		t.Fatalf("the cordon stays: %+v", b.Status)
	}
}

func TestANodeNeverReadyDoesNotHoldTheCensus(t *testing.T) {
	booting := builders.Node("b", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse })
	f := newFixture(t, builders.Node("a"), booting, builders.NodePolicy("p", cordonAction))
	f.reconcile(t, "a")
	f.reconcile(t, "b")
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a")
	if !f.node(t, "a").Spec.Unschedulable {
		t.Fatalf("held by a node that never got Ready: %+v", f.baseline(t, "a").Status)
	}
}

func TestACordonLeftByAnAcceptedNodeIsLifted(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.NodePolicy("p", cordonAction))
	f.reconcile(t, "a")
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a")
	// The person accepts the node: the baseline is deleted and recorded again; a failed lift
	// then (a conflict, a restart) is made good on any later look.
	if err := f.c.Delete(context.Background(), f.baseline(t, "a")); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "a")
	f.reconcile(t, "a")
	n := f.node(t, "a")
	if n.Spec.Unschedulable || len(n.Spec.Taints) != 0 {
		t.Fatalf("Fixity's cordon stays on an accepted node: %+v", n.Spec)
	}
	if b := f.baseline(t, "a"); b.Spec.NodeInfo.KernelVersion != "x" || b.Status.Phase != fixityv1.NodeClean {
		t.Fatalf("not recorded again: %+v", b)
	}
}

func TestTheNextNodeWaitsForTheReplacementToJoin(t *testing.T) {
	f := newFixture(t, builders.Node("a"), builders.Node("b"), builders.Node("c"), builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action, s.MaxDriftedPercent = fixityv1.NodeDrain, ptr.To[int32](100)
	}))
	for _, n := range []string{"a", "b", "c"} {
		f.reconcile(t, n)
	}
	f.setKernel(t, "a", "x")
	f.reconcile(t, "a")
	if b := f.baseline(t, "a"); b.Status.Phase != fixityv1.NodeCordoned {
		t.Fatalf("a drained: %+v", b.Status)
	}
	// a's machine is terminated and nothing replaces it (the garbage collector takes its baseline).
	for _, o := range []client.Object{f.node(t, "a"), f.baseline(t, "a")} {
		if err := f.c.Delete(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	f.reconcile(t, "a")
	f.setKernel(t, "b", "x")
	f.reconcile(t, "b")
	if b := f.baseline(t, "b"); !strings.HasPrefix(b.Status.Message, fixityv1.ReplacementPendingReason+": [policy p] 2 healthy nodes and 0 out, of the 3") || f.node(t, "b").Spec.Unschedulable {
		t.Fatalf("the next node must wait for the replacement: %+v", b.Status)
	}
	// The replacement joins: the next node goes.
	if err := f.c.Create(context.Background(), builders.Node("d")); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "d")
	f.reconcile(t, "b")
	if !f.node(t, "b").Spec.Unschedulable {
		t.Fatalf("b goes once the pool is whole: %+v", f.baseline(t, "b").Status)
	}
}
