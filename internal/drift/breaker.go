package drift

import (
	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Breaker is p's circuit breaker (remediation.Breaker) over its matched and drifted pods.
func Breaker(p *fixityv1.ImmutabilityPolicy, matched, drifted int) (allowed bool, msg string) {
	limit := int32(remediation.DefaultMaxDriftedPercent)
	if p.Spec.Drift.MaxDriftedPercent != nil {
		limit = *p.Spec.Drift.MaxDriftedPercent
	}
	return remediation.Breaker(limit, matched, drifted, "pods")
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
