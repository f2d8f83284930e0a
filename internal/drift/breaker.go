package drift

import (
	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Breaker is p's circuit breaker (remediation.Breaker) over its matched pods and those drifted
// by inference (Counts.Inferred). Pods drifted only by a ConfigChange do not trip it: a Deployment
// whose ConfigMap changed has every pod drifted at once, by the user's own act, and is rolled
// one pod at a time within its PodDisruptionBudget like any drift. An open breaker still holds
// them: while many pods look drifted for reasons Fixity inferred, it replaces nothing.
func Breaker(p *fixityv1.ImmutabilityPolicy, c Counts) (allowed bool, msg string) {
	limit := int32(remediation.DefaultMaxDriftedPercent)
	if p.Spec.Drift.MaxDriftedPercent != nil {
		limit = *p.Spec.Drift.MaxDriftedPercent
	}
	return remediation.Breaker(limit, c.Matched, c.Inferred, "pods")
}

// Replaces reports whether p replaces drifted pods (Enforce mode and action Replace) rather
// than only reporting them.
func Replaces(p *fixityv1.ImmutabilityPolicy) bool {
	return p.Spec.Mode != fixityv1.ModeAudit && p.Spec.Drift.Action != fixityv1.DriftReport
}

// EvictsUnadmittable reports whether p evicts a drifted pod even when its replacement would be
// denied (drift.evictUnadmittable).
func EvictsUnadmittable(p *fixityv1.ImmutabilityPolicy) bool {
	return p.Spec.Drift.EvictUnadmittable != nil && *p.Spec.Drift.EvictUnadmittable
}
