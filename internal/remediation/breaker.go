package remediation

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// DefaultMaxDriftedPercent is the circuit breaker's limit when a policy sets none.
const DefaultMaxDriftedPercent = 50

// Breaker decides whether replacements may go on while drifted of matched members are drifted.
// It opens (false) when the drifted share is over maxPercent: that many drifting at once is
// more likely a bad policy, a key rotation or a registry change than an attack, and replacing
// them all would take the workloads down. The message explains either way; noun names the
// members ("pods", "nodes").
func Breaker(maxPercent int32, matched, drifted int, noun string) (allowed bool, msg string) {
	if matched == 0 || drifted*100 <= int(maxPercent)*matched {
		return true, fmt.Sprintf("%d of %d matched %s are drifted, within maxDriftedPercent %d", drifted, matched, noun, maxPercent)
	}
	return false, fmt.Sprintf("%d of %d matched %s (%d%%) are drifted, over maxDriftedPercent %d: nothing is replaced until the share falls",
		drifted, matched, noun, drifted*100/matched, maxPercent)
}

// Census says when a group's counts can be trusted by a breaker: only once every member the
// group matches has been evaluated under the group's current generation (after a start, a
// policy change, or a namespace joining). Until then a breaker must wait, or the first drifted
// member found would be replaced before the others are seen.
type Census[K comparable] struct {
	mu       sync.Mutex
	complete map[string]int64
}

// Trusted reports whether group's counts at generation gen can be trusted. Until that has held
// once for gen, it lists the group's members and asks evaluated of each; afterwards it answers
// from memory: members created later are fresh replacements, counted once evaluated.
func (c *Census[K]) Trusted(group string, gen int64, members func() ([]K, error), evaluated func(K) bool) (bool, error) {
	c.mu.Lock()
	done := c.complete[group] == gen && gen != 0
	c.mu.Unlock()
	if done {
		return true, nil
	}
	ms, err := members()
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if !evaluated(m) {
			return false, nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.complete == nil {
		c.complete = map[string]int64{}
	}
	c.complete[group] = gen
	return true, nil
}

// Invalidate forgets every group's completeness: members may have joined (a namespace labelled
// into a policy) without any generation changing.
func (c *Census[K]) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.complete)
}

// Forget drops a group that is gone.
func (c *Census[K]) Forget(group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.complete, group)
}

// AllowedCondition is the RemediationAllowed condition of a breaker's verdict (Breaker) for an
// object of generation gen, and sets the breaker's gauge: 1 while it is open.
func AllowedCondition(allowed bool, msg string, gen int64, open prometheus.Gauge) metav1.Condition {
	cond := metav1.Condition{
		Type: fixityv1.RemediationAllowedCondition, Status: metav1.ConditionTrue,
		Reason: fixityv1.WithinBudgetReason, Message: msg, ObservedGeneration: gen,
	}
	open.Set(0)
	if !allowed {
		cond.Status, cond.Reason = metav1.ConditionFalse, fixityv1.TooManyDriftedReason
		open.Set(1)
	}
	return cond
}
