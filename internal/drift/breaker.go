package drift

import (
	"fmt"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// DefaultMaxDriftedPercent is the schema default of spec.drift.maxDriftedPercent.
const DefaultMaxDriftedPercent = 50

// Breaker decides whether p may replace pods while drifted of its matched pods are drifted.
// It opens (false) when the drifted share is over maxDriftedPercent: that many pods drifting at
// once is more likely a bad policy, key rotation or registry change than an attack, and
// replacing them all would take the workloads down. The message explains either way.
func Breaker(p *fixityv1.ImmutabilityPolicy, matched, drifted int) (allowed bool, msg string) {
	limit := int32(DefaultMaxDriftedPercent)
	if p.Spec.Drift.MaxDriftedPercent != nil {
		limit = *p.Spec.Drift.MaxDriftedPercent
	}
	if matched == 0 || drifted*100 <= int(limit)*matched {
		return true, fmt.Sprintf("%d of %d matched pods are drifted, within maxDriftedPercent %d", drifted, matched, limit)
	}
	return false, fmt.Sprintf("%d of %d matched pods (%d%%) are drifted, over maxDriftedPercent %d: nothing is replaced until the share falls",
		drifted, matched, drifted*100/matched, limit)
}

// Replaces reports whether p replaces drifted pods (Enforce mode and action Replace) rather
// than only reporting them.
func Replaces(p *fixityv1.ImmutabilityPolicy) bool {
	return p.Spec.Mode != fixityv1.ModeAudit && p.Spec.Drift.Action != fixityv1.DriftReport
}
