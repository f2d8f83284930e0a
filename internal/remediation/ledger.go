package remediation

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
)

// Ledger records each replacement a policy asked for: the replacements metric, and the
// policy's status.replacedPods, which is kept in the policy so that it survives restarts.
type Ledger struct {
	// Client patches the status; Reader reads the policy from the API server first, so that
	// a count is never lost to a stale copy.
	Client client.Client
	Reader client.Reader
}

// Replaced records one replacement by policy, made by method (metrics.MethodEvicted, ...).
// Failing to count never undoes or blocks a replacement: it is logged.
func (l *Ledger) Replaced(ctx context.Context, policy, method string) {
	metrics.DriftReplacements.WithLabelValues(policy, method).Inc()
	if err := l.count(ctx, policy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Counting a replacement", "policy", policy)
	}
}

// count adds one to status.replacedPods with an optimistic lock, so concurrent writers of the
// status do not lose counts.
func (l *Ledger) count(ctx context.Context, name string) error {
	for range 5 {
		p := &fixityv1.ImmutabilityPolicy{}
		if err := l.Reader.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return client.IgnoreNotFound(err)
		}
		before := p.DeepCopy()
		p.Status.ReplacedPods++
		err := l.Client.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("policy %s: status kept changing", name)
}
