package remediation

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
)

// ledgerCount is the key of a policy's replacement count in its ConfigMap.
const ledgerCount = "replaced"

// Ledger records each replacement a policy asked for: the replacements metric, and a count
// kept in ConfigMap fixity-replaced-<policy UID> in the operator's namespace, where tenants
// cannot write. The count survives restarts; the policy controller, the only writer of a
// policy's status, publishes it as status.replacedPods.
type Ledger struct {
	// Client writes the counts; Reader reads them and the policies from the API server, so
	// that concurrent replacements never lose a count to a stale copy.
	Client    client.Client
	Reader    client.Reader
	Namespace string
}

// CountName is the ConfigMap holding the replacement count of the policy (an
// ImmutabilityPolicy or a NodeImmutabilityPolicy) with this UID.
func CountName(p client.Object) string {
	if _, ok := p.(*fixityv1.NodeImmutabilityPolicy); ok {
		return "fixity-node-replaced-" + string(p.GetUID())
	}
	return "fixity-replaced-" + string(p.GetUID())
}

// Values of LedgerLabel on the replacement counts of pod and node policies.
const (
	countLabel     = "replaced"
	nodeCountLabel = "node-replaced"
	// NodePoolLabel (value of LedgerLabel) marks a node policy's pool record
	// (internal/nodedrift.RecordPool).
	NodePoolLabel = "node-pool"
)

// counted is what the ledger needs of a policy: its kind, and the count its status holds.
func counted(p client.Object) (label string, status int64) {
	switch p := p.(type) {
	case *fixityv1.NodeImmutabilityPolicy:
		return nodeCountLabel, p.Status.ReplacedNodes
	case *fixityv1.ImmutabilityPolicy:
		return countLabel, p.Status.ReplacedPods
	}
	return countLabel, 0
}

// Replaced records one replacement by policy, made by method (metrics.MethodEvicted, ...).
// Failing to count never undoes or blocks a replacement: it is logged.
func (l *Ledger) Replaced(ctx context.Context, policy, method string) {
	metrics.DriftReplacements.WithLabelValues(policy, method).Inc()
	if err := l.count(ctx, &fixityv1.ImmutabilityPolicy{}, policy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Counting a replacement", "policy", policy)
	}
}

// NodeReplaced records one node replaced under node policy, by method (metrics.MethodNodeClaim,
// ...), as Replaced does for pods.
func (l *Ledger) NodeReplaced(ctx context.Context, policy, method string) {
	metrics.NodeReplacements.WithLabelValues(policy, method).Inc()
	if err := l.count(ctx, &fixityv1.NodeImmutabilityPolicy{}, policy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Counting a node replacement", "policy", policy)
	}
}

// count adds one to the policy's count, with optimistic locking. The first count of a policy
// starts from its status (a policy from before counts were kept here keeps its total).
func (l *Ledger) count(ctx context.Context, p client.Object, name string) error {
	for range 5 {
		if err := l.Reader.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return client.IgnoreNotFound(err)
		}
		label, start := counted(p)
		cm := &corev1.ConfigMap{}
		err := l.Reader.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: CountName(p)}, cm)
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: l.Namespace, Name: CountName(p),
					Labels:      map[string]string{fixityv1.LedgerLabel: label},
					Annotations: map[string]string{fixityv1.LedgerPolicyAnnotation: name},
				},
				Data: map[string]string{ledgerCount: strconv.FormatInt(start+1, 10)},
			}
			err = l.Client.Create(ctx, cm)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			return err
		case err != nil:
			return err
		}
		n, err := strconv.ParseInt(cm.Data[ledgerCount], 10, 64)
		if err != nil {
			return fmt.Errorf("ConfigMap %s/%s: data %s: %w", cm.Namespace, cm.Name, ledgerCount, err)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[ledgerCount] = strconv.FormatInt(n+1, 10)
		err = l.Client.Update(ctx, cm) // resourceVersion from the read: a conflict is retried
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("policy %s: its replacement count kept changing", name)
}

// Count returns how many replacements p has asked for, as recorded; false when none is.
// r may be the manager's cache (the operator's namespace is cached).
func Count(ctx context.Context, r client.Reader, namespace string, p client.Object) (int64, bool, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: CountName(p)}, cm); err != nil {
		return 0, false, client.IgnoreNotFound(err)
	}
	n, err := strconv.ParseInt(cm.Data[ledgerCount], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("ConfigMap %s/%s: data %s: %w", cm.Namespace, cm.Name, ledgerCount, err)
	}
	return n, true, nil
}

// ForgetPolicy removes the counts of a deleted ImmutabilityPolicy (by name: its UID is gone
// with it).
func ForgetPolicy(ctx context.Context, c client.Client, namespace, name string) error {
	return forget(ctx, c, namespace, countLabel, name)
}

// ForgetNodePolicy removes the counts and the pool record of a deleted NodeImmutabilityPolicy.
func ForgetNodePolicy(ctx context.Context, c client.Client, namespace, name string) error {
	return errors.Join(forget(ctx, c, namespace, nodeCountLabel, name), forget(ctx, c, namespace, NodePoolLabel, name))
}

func forget(ctx context.Context, c client.Client, namespace, label, name string) error {
	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{fixityv1.LedgerLabel: label}); err != nil {
		return err
	}
	for i := range list.Items {
		if list.Items[i].Annotations[fixityv1.LedgerPolicyAnnotation] != name {
			continue
		}
		if err := c.Delete(ctx, &list.Items[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing the replacement count of deleted policy %s: %w", name, err)
		}
	}
	return nil
}
