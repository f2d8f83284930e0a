package nodeimmutabilitypolicy

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/builders"
)

func reconcileOnce(t *testing.T, objs ...client.Object) *fixityv1.NodeImmutabilityPolicy {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(objs...).
		WithStatusSubresource(&fixityv1.NodeImmutabilityPolicy{}).Build()
	r := &Reconciler{Client: c, Namespace: "fixity-system"}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	p := &fixityv1.NodeImmutabilityPolicy{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "p"}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseline is node's baseline as recorded, then the node changed by edit.
func baseline(node *corev1.Node, edit func(*corev1.Node), disrupted bool) (*corev1.Node, *fixityv1.NodeBaseline) {
	b := nodedrift.Record(node, nil, metav1.Now())
	if disrupted {
		nodedrift.MarkDisrupted(b, []string{"p"})
		b.Status.Phase = fixityv1.NodeDraining
	}
	edit(node)
	return node, b
}

func TestCountsAndBreaker(t *testing.T) {
	same := func(*corev1.Node) {}
	kernel := func(n *corev1.Node) { n.Status.NodeInfo.KernelVersion = "x" }
	a, ba := baseline(builders.Node("a"), kernel, true)
	b, bb := baseline(builders.Node("b"), kernel, false)
	c, bc := baseline(builders.Node("c"), same, false)
	other := builders.Node("other", func(n *corev1.Node) { n.Labels["pool"] = "gpu" })
	p := reconcileOnce(t, a, ba, b, bb, c, bc, other, builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pool", Operator: metav1.LabelSelectorOpDoesNotExist}}}
		s.MaxDriftedPercent = ptr.To[int32](50)
	}))
	if p.Status.MatchedNodes != 3 || p.Status.DriftedNodes != 2 || p.Status.ReplacingNodes != 1 {
		t.Fatalf("status %+v", p.Status)
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, fixityv1.RemediationAllowedCondition); c == nil || c.Reason != fixityv1.TooManyDriftedReason {
		t.Fatalf("2 of 3 is over 50%%: %+v", c)
	}
	if !meta.IsStatusConditionTrue(p.Status.Conditions, fixityv1.ReadyCondition) || p.Status.ObservedGeneration != p.Generation {
		t.Fatalf("Ready: %+v", p.Status)
	}
}

func TestInvalidSpecIsNotReady(t *testing.T) {
	p := reconcileOnce(t, builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Expect = &fixityv1.NodeExpectation{OSImageRegExp: "(unclosed"}
	}))
	c := meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReadyCondition)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != fixityv1.InvalidSpecReason {
		t.Fatalf("Ready %+v", c)
	}
}
