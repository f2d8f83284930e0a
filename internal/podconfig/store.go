package podconfig

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Object is what the operator knows of a ConfigMap or Secret: never its data.
type Object struct {
	// Hash is the keyed hash of its data (Key.Sum).
	Hash string
	// Immutable is its immutable field.
	Immutable bool
}

// Transform is the config cache's transform: it replaces a ConfigMap or Secret by its name,
// namespace, UID, resourceVersion, immutable and the hash of its data (ConfigHashAnnotation),
// so the cache holds no data, no labels and no annotations (kubectl's last-applied copy would
// hold the data again).
func (k *Key) Transform(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil // a tombstone
	}
	h, ok := k.Sum(o)
	if !ok {
		return obj, nil
	}
	meta := metav1.ObjectMeta{
		Name: o.GetName(), Namespace: o.GetNamespace(), UID: o.GetUID(), ResourceVersion: o.GetResourceVersion(),
		Generation: o.GetGeneration(), CreationTimestamp: o.GetCreationTimestamp(), DeletionTimestamp: o.GetDeletionTimestamp(),
		Annotations: map[string]string{fixityv1.ConfigHashAnnotation: h},
	}
	switch o := o.(type) {
	case *corev1.ConfigMap:
		return &corev1.ConfigMap{TypeMeta: o.TypeMeta, ObjectMeta: meta, Immutable: o.Immutable}, nil
	case *corev1.Secret:
		return &corev1.Secret{TypeMeta: o.TypeMeta, ObjectMeta: meta, Immutable: o.Immutable, Type: o.Type}, nil
	}
	return obj, nil
}

// NewCache returns the config cache: every ConfigMap and Secret of the cluster, transformed by
// k.Transform. It is a cache of its own because the manager's caches only the operator's own
// namespace's ConfigMaps, whole. Add it to the manager (it runs on every replica: the
// webhooks read it).
func NewCache(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper, k *Key) (cache.Cache, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme, Mapper: mapper,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Transform: k.Transform},
			&corev1.Secret{}:    {Transform: k.Transform},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the ConfigMap and Secret cache: %w", err)
	}
	return c, nil
}

// Store reads ConfigMaps and Secrets as Objects.
type Store struct {
	// Key hashes objects read from the API server; nil leaves Object.Hash empty (Deny only
	// reads immutable).
	Key *Key
	// Cache is the config cache (NewCache); nil reads every object from the API server.
	Cache client.Reader
	// Live reads from the API server: an object too new for the cache, and a change the cache
	// shows, which is confirmed before it is called drift.
	Live client.Reader
}

// New returns an empty ConfigMap or Secret.
func New(kind string) (client.Object, error) {
	switch kind {
	case KindConfigMap:
		return &corev1.ConfigMap{}, nil
	case KindSecret:
		return &corev1.Secret{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q (ConfigMap or Secret)", kind)
}

// Get reads an object from the cache, and from the API server if the cache does not have it
// (created a moment ago). found is false when it does not exist.
func (s *Store) Get(ctx context.Context, namespace, kind, name string) (Object, bool, error) {
	if o, found := s.getCached(ctx, namespace, kind, name); found {
		return o, true, nil
	}
	return s.GetLive(ctx, namespace, kind, name)
}

// getCached reads an object from the config cache; without one, or from one that cannot answer
// (not started yet), nothing is found and callers ask the API server.
func (s *Store) getCached(ctx context.Context, namespace, kind, name string) (Object, bool) {
	if s.Cache == nil {
		return Object{}, false
	}
	o, found, err := s.read(ctx, s.Cache, true, namespace, kind, name)
	return o, found && err == nil
}

// GetLive reads an object from the API server.
func (s *Store) GetLive(ctx context.Context, namespace, kind, name string) (Object, bool, error) {
	return s.read(ctx, s.Live, false, namespace, kind, name)
}

func (s *Store) read(ctx context.Context, r client.Reader, cached bool, namespace, kind, name string) (Object, bool, error) {
	obj, err := New(kind)
	if err != nil {
		return Object{}, false, err
	}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return Object{}, false, nil
		}
		return Object{}, false, fmt.Errorf("reading %s %s/%s: %w", kind, namespace, name, err)
	}
	return objectOf(s.Key, obj, cached), true, nil
}

// objectOf is what the operator keeps of obj: from the config cache, the hash its transform
// recorded; from the API server, the hash of its data (an annotation there is the user's to
// write, and never believed).
func objectOf(k *Key, obj client.Object, cached bool) Object {
	var h string
	if cached {
		h = obj.GetAnnotations()[fixityv1.ConfigHashAnnotation]
	} else if k != nil {
		h, _ = k.Sum(obj)
	}
	var immutable *bool
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		immutable = o.Immutable
	case *corev1.Secret:
		immutable = o.Immutable
	}
	return Object{Hash: h, Immutable: immutable != nil && *immutable}
}

// HashChanged is an update predicate for the config cache: only a change of data matters.
func HashChanged(old, updated client.Object) bool {
	return old.GetAnnotations()[fixityv1.ConfigHashAnnotation] != updated.GetAnnotations()[fixityv1.ConfigHashAnnotation]
}

var _ toolscache.TransformFunc = (&Key{}).Transform

// Changed compares a pod's record with the objects now. changed are the objects whose data
// changed; deleted those that are gone. A pod with no record, or a record made with another
// key, gives nothing: it is no evidence. A difference the cache shows is confirmed against the
// API server, so a cache behind the truth never makes drift.
func (s *Store) Changed(ctx context.Context, namespace string, rec Record) (changed, deleted []Entry, err error) {
	if rec.Key != s.Key.ID() {
		return nil, nil, nil
	}
	for _, e := range rec.Entries() {
		if obj, found := s.getCached(ctx, namespace, e.Kind, e.Name); found && obj.Hash == e.Hash {
			continue
		}
		obj, found, err := s.GetLive(ctx, namespace, e.Kind, e.Name)
		switch {
		case err != nil:
			return nil, nil, err
		case !found:
			deleted = append(deleted, e)
		case obj.Hash != e.Hash:
			changed = append(changed, e)
		}
	}
	return changed, deleted, nil
}
