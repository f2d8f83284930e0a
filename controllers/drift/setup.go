package drift

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/podconfig"
	"github.com/fixity-dev/fixity/internal/policy"
)

// OwnerIndex indexes pods by the UID of their controller, so the siblings of a pod are found
// without listing its whole namespace.
const OwnerIndex = fixityv1.OwnerIndex

// ConfigIndex indexes pods by the ConfigMaps and Secrets their fixity.dev/config record names.
const ConfigIndex = fixityv1.ConfigIndex

// recheckPerSecond spreads the re-check of many pods (a policy changed, a namespace relabelled)
// over time, so that one edit does not turn into a burst of registry calls and status writes.
const recheckPerSecond = 100

// saveForRecreation saves a drifted bare pod's admitted spec for the recreate controller, which
// deletes the pod and creates it again once it is gone.
func (r *Reconciler) saveForRecreation(ctx context.Context, s *scope) error {
	var names []string
	for _, p := range s.by {
		names = append(names, p.Name)
	}
	return drift.SaveForRecreation(ctx, r.APIReader, r.Client, r.Namespace, s.pod, names, "replacing it")
}

// SetupWithManager registers the controller: pods, and what changes which pods are drifted or
// may be replaced (policies, grants, namespaces' labels, owners' templates).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, OwnerIndex, func(o client.Object) []string {
		if c := metav1.GetControllerOfNoCopy(o); c != nil {
			return []string{string(c.UID)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by controller: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, ConfigIndex, func(o client.Object) []string {
		if pod, ok := o.(*corev1.Pod); ok {
			return podconfig.IndexValues(pod)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by the ConfigMaps and Secrets they recorded: %w", err)
	}
	owners := handler.EnqueueRequestsFromMapFunc(r.podsOfOwner)
	generation := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	b := ctrl.NewControllerManagedBy(mgr)
	if r.ConfigCache != nil {
		// Only a change of data (the hash the cache's transform keeps) is drift; a create
		// matters too (deleted and made again), and a delete is reported. The initial list's
		// creates wake nothing: every pod is looked at on start anyway, and a cluster's
		// thousands of ConfigMaps and Secrets would each list their pods.
		changed := predicate.Funcs{
			CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList },
			UpdateFunc: func(e event.UpdateEvent) bool { return podconfig.HashChanged(e.ObjectOld, e.ObjectNew) },
		}
		config := handler.EnqueueRequestsFromMapFunc(r.podsOfConfig)
		b = b.WatchesRawSource(source.Kind[client.Object](r.ConfigCache, &corev1.ConfigMap{}, config, changed)).
			WatchesRawSource(source.Kind[client.Object](r.ConfigCache, &corev1.Secret{}, config, changed))
	}
	if r.StatsChanged != nil {
		b = b.WatchesRawSource(source.Channel(r.StatsChanged, &handler.EnqueueRequestForObject{}))
	}
	return b.
		For(&corev1.Pod{}).
		Watches(&fixityv1.ImmutabilityPolicy{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.spread(q, r.podsOfPolicy(ctx, e.Object))
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.spread(q, r.podsOfPolicy(ctx, e.ObjectNew))
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.Census.Forget(e.Object.GetName())
				r.spread(q, r.podsOfPolicy(ctx, e.Object))
			},
		}, generation).
		Watches(&corev1.Namespace{}, handler.Funcs{
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				if !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
					// Pods may have come under a policy (or left one) without any policy
					// changing: their policies' counts are not complete until they are seen.
					r.Census.Invalidate()
					r.spread(q, r.podsOfNamespace(ctx, e.ObjectNew.GetName()))
				}
			},
		}).
		Watches(&fixityv1.AccessGrant{}, handler.EnqueueRequestsFromMapFunc(r.podsOfGrant)).
		// A held pod is judged again when its owner's template changes.
		WatchesMetadata(&appsv1.ReplicaSet{}, owners, generation).
		WatchesMetadata(&appsv1.StatefulSet{}, owners, generation).
		WatchesMetadata(&appsv1.DaemonSet{}, owners, generation).
		WatchesMetadata(&batchv1.Job{}, owners, generation).
		Named("drift").
		Complete(r)
}

// spread queues reqs at most recheckPerSecond a second. Verdicts are cached per digest and
// policy generation, so the registry sees one verification per distinct image, not per pod.
func (r *Reconciler) spread(q workqueue.TypedRateLimitingInterface[ctrl.Request], reqs []ctrl.Request) {
	for i, req := range reqs {
		q.AddAfter(req, time.Duration(i/recheckPerSecond)*time.Second)
	}
}

// matchedPods lists the live pods p matches, from the cache.
func matchedPods(ctx context.Context, c client.Reader, m *policy.Matcher, p *fixityv1.ImmutabilityPolicy) ([]types.NamespacedName, error) {
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []types.NamespacedName
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ok, err := m.MatchesNamespace(p, ns); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		var pods corev1.PodList
		// Read-only: no copy of every pod of the namespace per decision.
		if err := c.List(ctx, &pods, client.InNamespace(ns.Name), client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for j := range pods.Items {
			pod := &pods.Items[j]
			if !pod.DeletionTimestamp.IsZero() {
				continue
			}
			if ok, err := m.Matches(p, ns, pod.Labels); err != nil {
				return nil, err
			} else if ok {
				out = append(out, client.ObjectKeyFromObject(pod))
			}
		}
	}
	return out, nil
}

// podsOfPolicy lists the pods a policy matches and those it found drifted.
func (r *Reconciler) podsOfPolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	p, ok := obj.(*fixityv1.ImmutabilityPolicy)
	if !ok {
		return nil
	}
	keys, err := matchedPods(ctx, r.Client, r.Matcher, p)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the pods of a policy", "policy", p.Name)
		return nil
	}
	// Pods that no longer match are dropped from the counts when next looked at.
	return requests(append(keys, r.Tracker.Drifted(p.Name)...))
}

// podsOfNamespace lists the pods of a namespace whose labels changed.
func (r *Reconciler) podsOfNamespace(ctx context.Context, ns string) []ctrl.Request {
	return r.podsMatching(ctx, "Listing the pods of a relabelled namespace", client.InNamespace(ns))
}

// podsOfOwner lists the pods of an owner whose template changed.
func (r *Reconciler) podsOfOwner(ctx context.Context, obj client.Object) []ctrl.Request {
	return r.podsMatching(ctx, "Listing the pods of an owner "+klog.KObj(obj).String(),
		client.InNamespace(obj.GetNamespace()), client.MatchingFields{OwnerIndex: string(obj.GetUID())})
}

// podsMatching lists the cached pods matching opts as requests; a failure is logged as what.
func (r *Reconciler) podsMatching(ctx context.Context, what string, opts ...client.ListOption) []ctrl.Request {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, what)
		return nil
	}
	keys := make([]types.NamespacedName, 0, len(pods.Items))
	for i := range pods.Items {
		keys = append(keys, client.ObjectKeyFromObject(&pods.Items[i]))
	}
	return requests(keys)
}

// podsOfConfig lists the pods that recorded a ConfigMap or Secret whose data changed.
func (r *Reconciler) podsOfConfig(ctx context.Context, obj client.Object) []ctrl.Request {
	kind := podconfig.KindConfigMap
	if _, ok := obj.(*corev1.Secret); ok {
		kind = podconfig.KindSecret
	}
	return r.podsMatching(ctx, "Listing the pods that use "+kind+" "+klog.KObj(obj).String(),
		client.InNamespace(obj.GetNamespace()), client.MatchingFields{ConfigIndex: podconfig.IndexValue(kind, obj.GetNamespace(), obj.GetName())})
}

// podsOfGrant looks again at the pods a grant tainted when the grant changes (ends).
func (r *Reconciler) podsOfGrant(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the pods a grant may have tainted", "grant", klog.KObj(obj))
		return nil
	}
	var keys []types.NamespacedName
	for i := range pods.Items {
		nn, ok := grants.TaintGrant(pods.Items[i].Annotations[fixityv1.TaintedAnnotation])
		if ok && nn.Name == obj.GetName() && nn.Namespace == obj.GetNamespace() {
			keys = append(keys, client.ObjectKeyFromObject(&pods.Items[i]))
		}
	}
	return requests(keys)
}

// requests sorts and de-duplicates keys into requests.
func requests(keys []types.NamespacedName) []ctrl.Request {
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	keys = slices.Compact(keys)
	out := make([]ctrl.Request, len(keys))
	for i, k := range keys {
		out[i] = ctrl.Request{NamespacedName: k}
	}
	return out
}

// WritableLayerNodes are the nodes the kubelet stats poller reads: those running pods under a
// policy that runs WritableLayer. With no such policy, none, and no kubelet is ever dialled.
func (r *Reconciler) WritableLayerNodes(ctx context.Context) ([]*corev1.Node, error) {
	var policies fixityv1.ImmutabilityPolicyList
	if err := r.List(ctx, &policies); err != nil {
		return nil, fmt.Errorf("listing ImmutabilityPolicies: %w", err)
	}
	if !slices.ContainsFunc(policies.Items, runsWritableLayer) {
		return nil, nil
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	names := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning || names[pod.Spec.NodeName] {
			continue
		}
		ps, err := r.Matcher.ForPod(ctx, pod.Namespace, pod.Labels)
		if err != nil {
			continue // the drift controller reports the pod's own error
		}
		if slices.ContainsFunc(ps, runsWritableLayer) {
			names[pod.Spec.NodeName] = true
		}
	}
	nodes := make([]*corev1.Node, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		node := &corev1.Node{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, node); err != nil {
			continue // gone since: nothing to read
		}
		nodes = append(nodes, node)
	}
	return nodes, nil
}

func runsWritableLayer(p fixityv1.ImmutabilityPolicy) bool {
	return slices.Contains(drift.Enabled(&p), fixityv1.CheckWritableLayer)
}
