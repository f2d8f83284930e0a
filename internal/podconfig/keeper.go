package podconfig

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// restoreTimeout bounds the retries of restoring a deleted key Secret.
const restoreTimeout = 30 * time.Second

// KeepKey restores Secret fixity-config-key of namespace from k whenever inf (the config cache's
// Secret informer) sees it deleted, so that a replica starting later reads the same key rather
// than making a new one. c must write to the API server.
func KeepKey(inf cache.Informer, c client.Client, namespace string, k *Key, log logr.Logger) error {
	_, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		o, ok := obj.(client.Object)
		if !ok || o.GetNamespace() != namespace || o.GetName() != fixityv1.ConfigKeySecret {
			return
		}
		go restore(c, namespace, k, log)
	}})
	return err
}

func restore(c client.Client, namespace string, k *Key, log logr.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	ref := klog.KRef(namespace, fixityv1.ConfigKeySecret)
	var same bool
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 10, Cap: 5 * time.Second},
		func(ctx context.Context) (bool, error) {
			same, last = RestoreKey(ctx, c, namespace, k)
			return last == nil, nil
		})
	switch {
	case err != nil:
		log.Error(errors.Join(err, last), "The config hash key Secret was deleted and could not be restored: a replica that starts now makes a new key, and config changes under pods admitted before it go unnoticed",
			"secret", ref, "keyID", k.ID())
	case !same:
		log.Error(nil, "The config hash key Secret was deleted and made again with another key: replicas now disagree, and config changes under pods admitted with this key go unnoticed until they are recreated; restart the manager's replicas",
			"secret", ref, "keyID", k.ID())
	default:
		log.Info("Restored the deleted config hash key Secret", "secret", ref, "keyID", k.ID())
	}
}
