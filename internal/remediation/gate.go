package remediation

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// DefaultReplacementTimeout is how long an owner may take to get back the Ready pods it had
// before a replacement; after it the owner is reported stuck and nothing more of it is replaced
// until it recovers.
const DefaultReplacementTimeout = 10 * time.Minute

// GateWait is how soon an owner the gate holds is looked at again; StuckWait, once it is stuck.
const (
	GateWait  = 2 * time.Second
	StuckWait = 15 * time.Second
)

// ledgerExpiry is how old a ledger entry may be before it says nothing about the owner now
// (the owner recovered, and no other pod of it drifted to clear the entry); the floor of
// desired − 1 Ready pods holds either way.
const ledgerExpiry = 24 * time.Hour

// recentMemory is how long the gate remembers an eviction in memory, for the moment before the
// cache shows the evicted pod going, whether or not the ledger entry could be written.
const recentMemory = time.Minute

// Ledger entry keys.
const (
	ledgerReadyBefore = "readyBefore"
	ledgerPod         = "pod"
	ledgerPodUID      = "podUID"
	ledgerAt          = "at"
)

// Verdict is the gate's answer for one pod of an owner.
type Verdict struct {
	// Open lets the pod be replaced now.
	Open bool
	// Stuck means the owner did not recover from its last replacement in time.
	Stuck bool
	// Message says why not, for events, logs and status.
	Message string
	// RetryAfter is when to ask again (not Open).
	RetryAfter time.Duration
}

// Gate lets one pod of an owner be replaced at a time: the next only once the owner has as many
// Ready pods as before the previous replacement (the least of what its status says and what
// the pods show), and never when replacing the pod would leave the owner with fewer than
// desired − 1 Ready pods. What was replaced last is kept in a ledger in the operator's
// namespace, where tenants cannot write, so that a restart does not forget it.
type Gate struct {
	// Client writes the ledger.
	Client client.Client
	// Reader reads the ledger from the API server: two siblings decided a moment apart must
	// both see the first one's entry.
	Reader client.Reader
	// Namespace is the operator's namespace.
	Namespace string
	// Timeout is how long an owner may take to recover; 0 means DefaultReplacementTimeout.
	Timeout time.Duration
	Clock   clock.PassiveClock

	once   sync.Once
	recent *cache.LRUExpireCache // owner UID -> UID of the pod last evicted
}

type entry struct {
	readyBefore int32
	pod         string
	podUID      types.UID
	at          time.Time
}

func ledgerName(owner types.UID) string { return "fixity-replacing-" + string(owner) }

func (g *Gate) init() { g.recent = cache.NewLRUExpireCache(4096) }

func (g *Gate) clock() clock.PassiveClock {
	if g.Clock == nil {
		return clock.RealClock{}
	}
	return g.Clock
}

func (g *Gate) timeout() time.Duration {
	if g.Timeout > 0 {
		return g.Timeout
	}
	return DefaultReplacementTimeout
}

// Check decides whether pod, one of o's pods (all of them listed in pods, as the cache shows
// them), may be replaced now.
func (g *Gate) Check(ctx context.Context, o *Owner, pod *corev1.Pod, pods []corev1.Pod) (Verdict, error) {
	g.once.Do(g.init)
	// Evicted a moment ago and still shown Ready by the cache: it is going, whatever the ledger.
	if v, ok := g.recent.Get(o.UID); ok {
		evicted := v.(types.UID)
		for i := range pods {
			if pods[i].UID == evicted && pods[i].DeletionTimestamp.IsZero() {
				return Verdict{Message: fmt.Sprintf("pod %s of %s was just evicted", pods[i].Name, o), RetryAfter: GateWait}, nil
			}
		}
	}
	e, err := g.read(ctx, o)
	if err != nil {
		return Verdict{}, err
	}
	if e != nil {
		if e.podUID == pod.UID {
			// Evicted already, and the cache still shows it: it is going.
			return Verdict{Message: fmt.Sprintf("pod %s of %s is being replaced", e.pod, o), RetryAfter: GateWait}, nil
		}
		ready := readyPods(pods, e.podUID)
		if o.Known {
			ready = min(ready, o.Ready)
		}
		target := e.readyBefore
		if o.Known {
			target = min(target, o.Desired)
		}
		if ready < target {
			if g.clock().Since(e.at) >= g.timeout() {
				// The message stays the same while the owner stays stuck: it is told once.
				return Verdict{Stuck: true, RetryAfter: StuckWait, Message: fmt.Sprintf(
					"%s has %d Ready pods, not the %d it had before pod %s was replaced at %s: nothing more of it is replaced until it recovers",
					o, ready, target, e.pod, e.at.UTC().Format(time.RFC3339))}, nil
			}
			return Verdict{RetryAfter: GateWait, Message: fmt.Sprintf(
				"%s has %d of the %d Ready pods it had before pod %s was replaced; waiting", o, ready, target, e.pod)}, nil
		}
		if err := g.forget(ctx, o); err != nil {
			return Verdict{}, err
		}
	}
	// Replacing pod must leave at least desired − 1 Ready (a pod that is not Ready itself
	// costs nothing when it goes).
	desired := livePods(pods)
	if o.Known {
		desired = o.Desired
	}
	if others := readyPods(pods, pod.UID); others < desired-1 {
		return Verdict{RetryAfter: GateWait, Message: fmt.Sprintf(
			"%s has only %d other Ready pods of %d: replacing pod %s now would leave fewer than %d", o, others, desired, pod.Name, desired-1)}, nil
	}
	return Verdict{Open: true}, nil
}

// Record notes that pod of o was just evicted and how many Ready pods o had (pods as listed before
// the eviction), so the next of its pods waits until it has them again.
func (g *Gate) Record(ctx context.Context, o *Owner, pod *corev1.Pod, pods []corev1.Pod) error {
	g.once.Do(g.init)
	g.recent.Add(o.UID, pod.UID, recentMemory)
	ready := readyPods(pods, "")
	if o.Known {
		ready = min(ready, o.Ready)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: g.Namespace, Name: ledgerName(o.UID),
			Labels:      map[string]string{fixityv1.LedgerLabel: "owner"},
			Annotations: map[string]string{fixityv1.LedgerOwnerAnnotation: o.String()},
		},
		Data: map[string]string{
			ledgerReadyBefore: strconv.Itoa(int(ready)),
			ledgerPod:         pod.Name,
			ledgerPodUID:      string(pod.UID),
			ledgerAt:          g.clock().Now().UTC().Format(time.RFC3339),
		},
	}
	err := g.Client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		err = g.Client.Update(ctx, cm)
	}
	if err != nil {
		return fmt.Errorf("recording the replacement of pod %s/%s in the ledger: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

func (g *Gate) forget(ctx context.Context, o *Owner) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: g.Namespace, Name: ledgerName(o.UID)}}
	if err := g.Client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing the ledger entry of %s: %w", o, err)
	}
	return nil
}

// read returns o's ledger entry, or nil. An entry that does not parse is an error naming it:
// it is the operator's own record, so a bad one is a bug or tampering, and nothing of the
// owner is replaced until it is looked at.
func (g *Gate) read(ctx context.Context, o *Owner) (*entry, error) {
	cm := &corev1.ConfigMap{}
	if err := g.Reader.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: ledgerName(o.UID)}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the ledger entry of %s: %w", o, err)
	}
	bad := func(key string, err error) error {
		return fmt.Errorf("ConfigMap %s/%s: data %s: %w", cm.Namespace, cm.Name, key, err)
	}
	n, err := strconv.ParseInt(cm.Data[ledgerReadyBefore], 10, 32)
	if err != nil {
		return nil, bad(ledgerReadyBefore, err)
	}
	at, err := time.Parse(time.RFC3339, cm.Data[ledgerAt])
	if err != nil {
		return nil, bad(ledgerAt, err)
	}
	if g.clock().Since(at) > ledgerExpiry {
		return nil, g.forget(ctx, o)
	}
	return &entry{readyBefore: int32(n), pod: cm.Data[ledgerPod], podUID: types.UID(cm.Data[ledgerPodUID]), at: at}, nil
}

// readyPods counts the Ready pods of pods other than the one with UID except.
func readyPods(pods []corev1.Pod, except types.UID) int32 {
	var n int32
	for i := range pods {
		if pods[i].UID != except && PodReady(&pods[i]) {
			n++
		}
	}
	return n
}

// livePods counts the pods that are not terminating.
func livePods(pods []corev1.Pod) int32 {
	var n int32
	for i := range pods {
		if pods[i].DeletionTimestamp.IsZero() {
			n++
		}
	}
	return n
}
