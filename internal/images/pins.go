package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// PinsPrefix starts the name of the ConfigMap that holds the tag resolutions of one owner.
const PinsPrefix = "fixity-pins-"

// pinTTL is how long a replica remembers a pin it has seen; the ConfigMap is the record.
const pinTTL = 30 * time.Minute

// Pins remembers, per owner (ReplicaSet, StatefulSet, Job...) and container, the digest a tag
// was resolved to for its first pod, so that every pod of the owner runs the same digest even
// if the tag moves during a rollout.
//
// The record must be shared by all webhook replicas, so it lives in the cluster: a ConfigMap
// fixity-pins-<owner UID> in the pod's namespace, owned by the owner (garbage-collected with
// it). The first replica to resolve creates it; a replica that loses the race adopts what the
// winner wrote. Editing it can only pick another digest of the same repository, which must
// still pass every other rule, so it grants nothing a developer could not write in the pod.
type Pins struct {
	Client client.Client
	// Reader reads the ConfigMaps uncached: a replica must see what another wrote a moment ago.
	Reader client.Reader

	seen *cache.LRUExpireCache
}

// NewPins returns a Pins store.
func NewPins(c client.Client, r client.Reader) *Pins {
	return &Pins{Client: c, Reader: r, seen: cache.NewLRUExpireCache(10000)}
}

// Owner returns the controller of pod, or nil for a bare pod.
func Owner(pod *corev1.Pod) *metav1.OwnerReference {
	return metav1.GetControllerOfNoCopy(pod)
}

// Pin returns the digest pinned for (owner, container, image), calling resolve and recording
// its answer when there is none yet. dryRun resolves without recording.
func (p *Pins) Pin(ctx context.Context, pod *corev1.Pod, owner *metav1.OwnerReference, container, image string, dryRun bool,
	resolve func() (string, error)) (string, error) {
	namespace := pod.Namespace
	key := PinKey(pod, container, image)
	memo := string(owner.UID) + "/" + key
	if d, ok := p.seen.Get(memo); ok {
		return d.(string), nil
	}
	nn := types.NamespacedName{Namespace: namespace, Name: PinsPrefix + string(owner.UID)}
	cm := &corev1.ConfigMap{}
	err := p.Reader.Get(ctx, nn, cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("reading pinned digests %s: %w", nn, err)
	}
	if d, ok := cm.Data[key]; err == nil && ok {
		if err := validPin(nn, d); err != nil {
			return "", err
		}
		p.seen.Add(memo, d, pinTTL)
		return d, nil
	}
	digest, rerr := resolve()
	if rerr != nil {
		return "", rerr
	}
	if dryRun {
		return digest, nil
	}
	// Record it; on a race, the first writer wins and everyone adopts its digest.
	for range 3 {
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: namespace, Name: nn.Name,
					Labels: map[string]string{fixityv1.PinsLabel: "true"},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID,
					}},
				},
				Data: map[string]string{key: digest},
			}
			err = p.Client.Create(ctx, cm)
		} else {
			before := cm.DeepCopy()
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[key] = digest
			err = p.Client.Patch(ctx, cm, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		}
		if err == nil {
			p.seen.Add(memo, digest, pinTTL)
			return digest, nil
		}
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
			return "", fmt.Errorf("recording pinned digest in %s: %w", nn, err)
		}
		cm = &corev1.ConfigMap{}
		if err = p.Reader.Get(ctx, nn, cm); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("reading pinned digests %s: %w", nn, err)
		}
		if d, ok := cm.Data[key]; err == nil && ok {
			if err := validPin(nn, d); err != nil {
				return "", err
			}
			p.seen.Add(memo, d, pinTTL)
			return d, nil
		}
	}
	return "", fmt.Errorf("recording pinned digest in %s: too many concurrent writers", nn)
}

// validPin refuses a recorded value that is not a sha256 digest: the ConfigMap sits in the
// workload's namespace, and what someone wrote there must not turn into an unpinned image.
func validPin(nn types.NamespacedName, d string) error {
	if _, err := v1.NewHash(d); err != nil || !strings.HasPrefix(d, "sha256:") {
		return fmt.Errorf("the pinned digest recorded in ConfigMap %s is not a sha256 digest (%q); delete the ConfigMap to resolve the tag again", nn, d)
	}
	return nil
}

// PinKey is the key, in the owner's fixity-pins- ConfigMap, of one container's tag within one
// revision of the owner. StatefulSets and DaemonSets keep their UID across rollouts and label
// each pod with the revision it was made from, so a rollout (after the tag moved, or a restart)
// gets what the tag points at then; ReplicaSets and Jobs are one revision each.
func PinKey(pod *corev1.Pod, container, image string) string {
	sum := sha256.Sum256([]byte(pod.Labels[appsv1.ControllerRevisionHashLabelKey] + "\x00" + container + "\x00" + image))
	return hex.EncodeToString(sum[:16])
}
