package nodedrift

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// A node policy's pool record: how many healthy nodes it matched before Fixity first took one
// out to be drained or replaced. Until the pool is back to that size (healthy nodes plus those
// still out), no further node is taken out: a replacement that never joins (a provisioner out of
// capacity, a NodePool at its limit) must not be followed by another node leaving. Kept in the
// operator's namespace, as the pod replacement ledger is, because the baseline of a node goes
// with the node.
const (
	poolHealthy = "healthy"
	poolAt      = "at"
	// PoolExpiry is how long a pool record holds: a pool shrunk on purpose is accepted after it,
	// or at once by deleting the record.
	PoolExpiry = 24 * time.Hour
)

// PoolName is the ConfigMap holding the pool record of the node policy with this UID.
func PoolName(p *fixityv1.NodeImmutabilityPolicy) string { return "fixity-node-pool-" + string(p.UID) }

// Healthy reports whether a node takes pods: Ready and not cordoned.
func Healthy(n *corev1.Node) bool { return Ready(n) && !n.Spec.Unschedulable }

// PoolRecord is a pool's size before its first node was taken out, and when that was.
type PoolRecord struct {
	Healthy int
	At      time.Time
	obj     *corev1.ConfigMap
}

// ReadPool reads p's pool record from r (the API server); nil when there is none.
func ReadPool(ctx context.Context, r client.Reader, namespace string, p *fixityv1.NodeImmutabilityPolicy) (*PoolRecord, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: PoolName(p)}, cm); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	n, err := strconv.Atoi(cm.Data[poolHealthy])
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: data %s: %w", cm.Namespace, cm.Name, poolHealthy, err)
	}
	at, err := time.Parse(time.RFC3339, cm.Data[poolAt])
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: data %s: %w", cm.Namespace, cm.Name, poolAt, err)
	}
	return &PoolRecord{Healthy: n, At: at, obj: cm}, nil
}

// RecordPool writes p's pool size before a node is taken out, unless a record already holds a
// size (the first one stands until the pool is whole again).
func RecordPool(ctx context.Context, c client.Client, r client.Reader, namespace string, p *fixityv1.NodeImmutabilityPolicy, healthy int, now time.Time) error {
	rec, err := ReadPool(ctx, r, namespace, p)
	if err != nil || rec != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: PoolName(p),
			Labels:      map[string]string{fixityv1.LedgerLabel: remediation.NodePoolLabel},
			Annotations: map[string]string{fixityv1.LedgerPolicyAnnotation: p.Name},
		},
		Data: map[string]string{poolHealthy: strconv.Itoa(healthy), poolAt: now.UTC().Format(time.RFC3339)},
	}
	if err := c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("recording the pool of node policy %s: %w", p.Name, err)
	}
	return nil
}

// Forget removes the record: the pool is whole again, or the record expired.
func (rec *PoolRecord) Forget(ctx context.Context, c client.Client) error {
	uid := rec.obj.UID
	return client.IgnoreNotFound(c.Delete(ctx, rec.obj, client.Preconditions{UID: &uid}))
}
