package immutabilitypolicy

import (
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
	"github.com/fixity-dev/fixity/test/builders"
)

// The policy's status is derived from the tracker in one place: counts, the breaker's condition
// and gauge, and the held pods with what to fix.
func TestReconcileDrift(t *testing.T) {
	ctx := context.Background()
	finding := []drift.Finding{{Check: fixityv1.CheckUnverified, Message: "not signed"}}
	state := func(drifted bool) drift.PodState {
		s := drift.PodState{Findings: map[string][]drift.Finding{"prod": nil}, Generations: map[string]int64{"prod": 1}}
		if drifted {
			s.Findings["prod"] = finding
		}
		return s
	}
	for _, tc := range []struct {
		name                      string
		pods, drifted, held       int
		breaker                   metav1.ConditionStatus
		breakerReason, heldReason string
		gauge                     float64
	}{
		{"clean", 4, 0, 0, metav1.ConditionTrue, fixityv1.WithinBudgetReason, fixityv1.ProceedingReason, 0},
		{"one drifted", 4, 1, 0, metav1.ConditionTrue, fixityv1.WithinBudgetReason, fixityv1.ProceedingReason, 0},
		{"too many drifted", 4, 3, 0, metav1.ConditionFalse, fixityv1.TooManyDriftedReason, fixityv1.ProceedingReason, 1},
		{"drifted and held", 4, 2, 2, metav1.ConditionTrue, fixityv1.WithinBudgetReason, fixityv1.ReplacementWouldBeDeniedReason, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := drift.NewTracker()
			for i := range tc.pods {
				key := types.NamespacedName{Namespace: "shop", Name: "web-" + string(rune('a'+i))}
				tr.Set(key, state(i < tc.drifted))
				if i < tc.held {
					tr.SetHeld(key, &drift.Hold{Reason: fixityv1.ReplacementWouldBeDeniedReason,
						Message: "ReplicaSet shop/web would create pods that are denied; sign the image", Policies: []string{"prod"}})
				}
			}
			p := builders.Policy("prod")
			r := &Reconciler{Drift: tr, Client: fake.NewClientBuilder().WithScheme(operator.NewScheme()).Build(), Namespace: "fixity-system"}
			if o := r.reconcileDrift(ctx, p); o.Kind != reconcile.Continue {
				t.Fatalf("outcome = %+v", o)
			}
			if p.Status.MatchedPods != int32(tc.pods) || p.Status.DriftedPods != int32(tc.drifted) || p.Status.HeldPods != int32(tc.held) {
				t.Fatalf("status counts = %+v", p.Status)
			}
			breaker := meta.FindStatusCondition(p.Status.Conditions, fixityv1.RemediationAllowedCondition)
			if breaker == nil || breaker.Status != tc.breaker || breaker.Reason != tc.breakerReason {
				t.Fatalf("RemediationAllowed = %+v", breaker)
			}
			m := &dto.Metric{}
			if err := metrics.BreakerOpen.WithLabelValues("prod").Write(m); err != nil {
				t.Fatal(err)
			}
			if got := m.GetGauge().GetValue(); got != tc.gauge {
				t.Fatalf("breaker gauge = %v, want %v (set with its condition)", got, tc.gauge)
			}
			held := meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReplacementsProceedingCondition)
			if held == nil || held.Reason != tc.heldReason || (tc.held > 0) != (held.Status == metav1.ConditionFalse) {
				t.Fatalf("ReplacementsProceeding = %+v", held)
			}
			if tc.held > 0 && !strings.Contains(held.Message, "sign the image") {
				t.Fatalf("the message says what to fix: %q", held.Message)
			}
		})
	}
}

// A spec the schema let through but that cannot be enforced is terminal: Ready says which field
// (InvalidSpec), and it is not retried.
func TestInvalidSpecIsTerminal(t *testing.T) {
	p := builders.Policy("prod", func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Match.PodSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
	})
	o := reconcile.Worst((&Reconciler{}).reconcileSpec(context.Background(), p), reconcile.Next())
	setReady(p, o)
	ready := meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReadyCondition)
	if o.Kind != reconcile.Terminal || ready == nil || ready.Reason != fixityv1.InvalidSpecReason || !strings.Contains(ready.Message, "spec.match.podSelector") {
		t.Fatalf("outcome %+v, Ready %+v", o, ready)
	}
}

// status.replacedPods is published by the policy controller alone, from the ledger's count; a
// status ahead of the ledger (from before counts were kept there) is kept.
func TestReplacedPodsComeFromTheLedger(t *testing.T) {
	ctx := context.Background()
	p := builders.Policy("prod")
	p.UID = "p-uid"
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(p).WithStatusSubresource(p).Build()
	ledger := &remediation.Ledger{Client: c, Reader: c, Namespace: "fixity-system"}
	for range 3 {
		ledger.Replaced(ctx, "prod", metrics.MethodEvicted)
	}
	r := &Reconciler{Drift: drift.NewTracker(), Client: c, Namespace: "fixity-system"}
	if o := r.reconcileDrift(ctx, p); o.Kind != reconcile.Continue || p.Status.ReplacedPods != 3 {
		t.Fatalf("outcome %+v, replacedPods %d, want 3", o, p.Status.ReplacedPods)
	}
	p.Status.ReplacedPods = 7
	if r.reconcileDrift(ctx, p); p.Status.ReplacedPods != 7 {
		t.Fatalf("a status ahead of the ledger went back to %d", p.Status.ReplacedPods)
	}
	if err := remediation.ForgetPolicy(ctx, c, "fixity-system", "prod"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := remediation.Count(ctx, c, "fixity-system", p); ok {
		t.Fatal("the count of a deleted policy is kept")
	}
}
