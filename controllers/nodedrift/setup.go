package nodedrift

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/nodedrift"
)

// NodeNameIndex indexes pods by the node they run on, so that a drain lists one node's pods.
const NodeNameIndex = "spec.nodeName"

// nodeChanged lets through the Node updates that can change a verdict: the kubelet's heartbeats
// and condition updates that leave these alone are not looked at.
var nodeChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
	return o.Status.NodeInfo != n.Status.NodeInfo || !maps.Equal(o.Labels, n.Labels) ||
		!reflect.DeepEqual(o.Spec, n.Spec) || nodedrift.Ready(o) != nodedrift.Ready(n) ||
		!n.DeletionTimestamp.IsZero()
}}

// SetupWithManager registers the controller: nodes, their baselines, the node policies, and the
// pods leaving draining nodes. One worker: a budget is decided by one reconcile at a time.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, NodeNameIndex, func(o client.Object) []string {
		if n := o.(*corev1.Pod).Spec.NodeName; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.Node{}, builder.WithPredicates(nodeChanged)).
		// A baseline deleted (to accept a node as it is) is recorded again at once.
		Watches(&fixityv1.NodeBaseline{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			return []ctrl.Request{nodeOf(o.GetName())}
		}), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(event.UpdateEvent) bool { return false }, // our own status writes
		})).
		Watches(&fixityv1.NodeImmutabilityPolicy{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.all(ctx, q)
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.all(ctx, q)
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.Census.Forget(e.Object.GetName())
				r.all(ctx, q)
			},
		}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A pod gone from a draining node may end the drain.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []ctrl.Request {
			pod := o.(*corev1.Pod)
			if pod.Spec.NodeName == "" || pod.DeletionTimestamp.IsZero() && !r.draining(ctx, pod.Spec.NodeName) {
				return nil
			}
			return []ctrl.Request{nodeOf(pod.Spec.NodeName)}
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Named("nodedrift").
		Complete(r)
}

// draining reports whether the node's baseline says it is being drained.
func (r *Reconciler) draining(ctx context.Context, node string) bool {
	b := &fixityv1.NodeBaseline{}
	if err := r.Get(ctx, client.ObjectKey{Name: node}, b); err != nil {
		return false
	}
	return slices.Contains([]fixityv1.NodePhase{fixityv1.NodeDraining, fixityv1.NodeDrainStuck}, b.Status.Phase)
}

// all queues every node: a policy changed, so any node's verdict may have.
func (r *Reconciler) all(ctx context.Context, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing nodes to look at again")
		return
	}
	for i := range nodes.Items {
		q.Add(nodeOf(nodes.Items[i].Name))
	}
}
