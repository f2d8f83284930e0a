package podconfig

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// restoreTimeout bounds the retries of one restore of the key Secret.
const restoreTimeout = 30 * time.Second

// KeyKeeper puts Secret fixity-config-key of Namespace back from Key, the key this replica holds,
// whenever it is gone: once the config cache has synced (it may have been deleted between
// EnsureKey and the first list, which no delete event reports), and on every deletion the cache
// sees. Without it a replica starting later would make a new key, and every pod's record would
// stop counting. Add it to the manager on every replica.
type KeyKeeper struct {
	// Client writes to the API server.
	Client    client.Client
	Namespace string
	Key       *Key
	// Cache is the config cache (NewCache).
	Cache cache.Cache
	Log   logr.Logger
}

// NeedLeaderElection is false: every replica holds the key.
func (k *KeyKeeper) NeedLeaderElection() bool { return false }

// Start restores the Secret when it is missing, until ctx ends.
func (k *KeyKeeper) Start(ctx context.Context) error {
	inf, err := k.Cache.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return err
	}
	gone := make(chan struct{}, 1)
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if o, ok := obj.(client.Object); ok && o.GetNamespace() == k.Namespace && o.GetName() == fixityv1.ConfigKeySecret {
			select {
			case gone <- struct{}{}:
			default: // a restore is pending already
			}
		}
	}})
	if err != nil {
		return err
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	if !k.Cache.WaitForCacheSync(ctx) {
		return nil // stopping
	}
	k.restore(ctx, false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-gone:
			k.restore(ctx, true)
		}
	}
}

// restore creates the Secret again if it is missing; deleted says a deletion was seen.
func (k *KeyKeeper) restore(ctx context.Context, deleted bool) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	ref := klog.KRef(k.Namespace, fixityv1.ConfigKeySecret)
	var created, same bool
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 10, Cap: 5 * time.Second},
		func(ctx context.Context) (bool, error) {
			created, same, last = RestoreKey(ctx, k.Client, k.Namespace, k.Key)
			return last == nil, nil
		})
	switch {
	case err != nil:
		k.Log.Error(errors.Join(err, last), "The config hash key Secret is gone and could not be restored: a replica that starts now makes a new key, and config changes under pods admitted before it go unnoticed",
			"secret", ref, "keyID", k.Key.ID())
	case !same:
		k.Log.Error(nil, "The config hash key Secret holds another key than this replica's: replicas disagree, and config changes under pods admitted with either key go unnoticed by the others until the pods are recreated; restart the manager's replicas",
			"secret", ref, "keyID", k.Key.ID())
	case created:
		k.Log.Info("Restored the config hash key Secret", "secret", ref, "keyID", k.Key.ID(), "afterDeletion", deleted)
	}
}
