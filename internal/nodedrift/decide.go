package nodedrift

import (
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// DefaultDrainTimeout applies when a policy sets none.
const DefaultDrainTimeout = 30 * time.Minute

// caution ranks actions: the lower, the more cautious.
var caution = map[fixityv1.NodeAction]int{
	fixityv1.NodeReport: 0, fixityv1.NodeCordon: 1, fixityv1.NodeDrain: 2, fixityv1.NodeReplace: 3,
}

// ActionOf is what p does to a drifted node: Report in mode Audit, its action otherwise.
func ActionOf(p *fixityv1.NodeImmutabilityPolicy) fixityv1.NodeAction {
	if p.Spec.Mode == fixityv1.ModeAudit {
		return fixityv1.NodeReport
	}
	if p.Spec.Action == "" {
		return fixityv1.NodeReplace
	}
	return p.Spec.Action
}

// Action is the most cautious action of the policies that found the node drifted (Report,
// then Cordon, then Drain, then Replace): one policy that only reports keeps the node.
func Action(policies []*fixityv1.NodeImmutabilityPolicy) fixityv1.NodeAction {
	out := fixityv1.NodeReplace
	for _, p := range policies {
		if a := ActionOf(p); caution[a] < caution[out] {
			out = a
		}
	}
	return out
}

// Budget is how many of matched nodes p lets Fixity have cordoned at once.
func Budget(p *fixityv1.NodeImmutabilityPolicy, matched int) (int, error) {
	v := p.Spec.MaxUnavailable
	if v == nil {
		one := intstr.FromInt32(1)
		v = &one
	}
	return remediation.Budget(v, matched)
}

// DrainTimeout is the shortest drainTimeout of policies.
func DrainTimeout(policies []*fixityv1.NodeImmutabilityPolicy) time.Duration {
	out := time.Duration(0)
	for _, p := range policies {
		d := DefaultDrainTimeout
		if p.Spec.DrainTimeout != nil {
			d = p.Spec.DrainTimeout.Duration
		}
		if out == 0 || d < out {
			out = d
		}
	}
	if out == 0 {
		return DefaultDrainTimeout
	}
	return out
}

// Breaker is p's circuit breaker (remediation.Breaker) over its matched and drifted nodes.
func Breaker(p *fixityv1.NodeImmutabilityPolicy, matched, drifted int) (allowed bool, msg string) {
	limit := int32(20)
	if p.Spec.MaxDriftedPercent != nil {
		limit = *p.Spec.MaxDriftedPercent
	}
	return remediation.Breaker(limit, matched, drifted, "nodes")
}

// Disrupted reports whether Fixity is taking b's node out: the label written before the cordon
// is the record; the phase follows it.
func Disrupted(b *fixityv1.NodeBaseline) bool {
	return b.Labels[fixityv1.DisruptedLabel] == "true" || b.Status.Phase.Disrupted()
}

// DisruptedUnder are the node policies b's node was taken out under.
func DisruptedUnder(b *fixityv1.NodeBaseline) []string {
	if v, ok := b.Annotations[fixityv1.SavedPoliciesAnnotation]; ok && v != "" {
		return strings.Split(v, ",")
	}
	return b.Status.Policies
}

// MarkDisrupted records on b that its node is taken out under policies.
func MarkDisrupted(b *fixityv1.NodeBaseline, policies []string) {
	if b.Labels == nil {
		b.Labels = map[string]string{}
	}
	if b.Annotations == nil {
		b.Annotations = map[string]string{}
	}
	b.Labels[fixityv1.DisruptedLabel] = "true"
	b.Annotations[fixityv1.SavedPoliciesAnnotation] = strings.Join(policies, ",")
}

// Names are the policies' names, sorted.
func Names(policies []*fixityv1.NodeImmutabilityPolicy) []string {
	out := make([]string, len(policies))
	for i, p := range policies {
		out[i] = p.Name
	}
	slices.Sort(out)
	return out
}
