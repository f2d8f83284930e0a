package remediation

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Eviction backoff: an eviction a PodDisruptionBudget refuses (or the API server throttles) is
// first retried after EvictionRetry, doubled for each refusal in a row up to EvictionRetryMax.
const (
	EvictionRetry    = time.Second
	EvictionRetryMax = 2 * time.Minute
)

// EvictResult is what an eviction came to.
type EvictResult int

const (
	// Evicted means the API server accepted the eviction; the pod is going.
	Evicted EvictResult = iota
	// Gone means the pod (with that UID) was already gone.
	Gone
	// Refused means a PodDisruptionBudget or the API server's throttling said not now.
	Refused
)

// Eviction is the outcome of Evictor.Evict.
type Eviction struct {
	Result EvictResult
	// RetryAfter is how long to wait before trying again (Refused).
	RetryAfter time.Duration
	// Budget is true when a PodDisruptionBudget refused (not throttling).
	Budget bool
	// Reason is the API server's message (Refused).
	Reason string
}

// Evictor evicts pods through the Eviction API, never by deleting: PodDisruptionBudgets are
// respected, and a refusal is retried with backoff per pod.
type Evictor struct {
	Client client.Client
	// refused counts refusals in a row per pod UID, bounded and expiring: a pod deleted by
	// someone else while refused leaves nothing behind for long.
	refused *cache.LRUExpireCache
	once    sync.Once
}

// refusalsKept bounds how many pods' refusals are remembered, and for how long.
const (
	refusalsKept   = 4096
	refusalsMemory = 4 * EvictionRetryMax
)

// NewEvictor returns an Evictor.
func NewEvictor(c client.Client) *Evictor {
	return &Evictor{Client: c, refused: cache.NewLRUExpireCache(refusalsKept)}
}

// backoff counts one more refusal of uid and returns the wait before the next try:
// EvictionRetry, doubled for each refusal in a row, at most EvictionRetryMax.
func (e *Evictor) backoff(uid types.UID) time.Duration {
	e.init()
	n := 0
	if v, ok := e.refused.Get(uid); ok {
		n = v.(int)
	}
	e.refused.Add(uid, n+1, refusalsMemory)
	return min(EvictionRetry<<min(n, 16), EvictionRetryMax)
}

// Evict asks the API server to evict pod, with its UID as a precondition so that a pod of the
// same name created since is never touched.
func (e *Evictor) Evict(ctx context.Context, pod *corev1.Pod) (Eviction, error) {
	eviction := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	}
	err := e.Client.SubResource("eviction").Create(ctx, pod, eviction)
	switch {
	case err == nil:
		e.Forget(pod.UID)
		return Eviction{Result: Evicted}, nil
	case apierrors.IsTooManyRequests(err):
		return Eviction{
			Result: Refused, RetryAfter: e.backoff(pod.UID), Reason: err.Error(),
			Budget: apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause),
		}, nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		e.Forget(pod.UID)
		return Eviction{Result: Gone}, nil
	}
	return Eviction{}, fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
}

// Forget drops the backoff of a pod that is gone.
func (e *Evictor) Forget(uid types.UID) {
	e.init()
	e.refused.Remove(uid)
}

// init makes a zero Evictor usable.
func (e *Evictor) init() {
	e.once.Do(func() {
		if e.refused == nil {
			e.refused = cache.NewLRUExpireCache(refusalsKept)
		}
	})
}
