package recreate

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// waitGoing is how soon a pod that is still terminating is looked at again.
const waitGoing = 2 * time.Second

// Reconciler recreates one bare pod from its saved spec.
type Reconciler struct {
	client.Client
	// APIReader reads the pod as it is now: a stale cache must not make it be created twice.
	APIReader client.Reader
	Ledger    *remediation.Ledger
	Events    events.EventRecorder
	// Namespace is the operator's namespace, the only one saved specs are read from.
	Namespace string
}

type scope struct {
	saved *corev1.ConfigMap
	spec  *drift.Saved
	// current is the pod under the saved name now, nil if none.
	current *corev1.Pod
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;list;watch;create;update;delete

// Reconcile takes one saved spec a step further: delete the drifted pod, wait for it to go,
// create it again, then drop the saved spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s, err := r.newScope(ctx, req)
	if s == nil || err != nil {
		return ctrl.Result{}, err
	}
	return reconcile.Run(ctx, s,
		r.deleteDrifted, // the pod with the saved UID is deleted, and waited for
		r.create,        // the pod is created from the saved spec
		r.finish,        // the saved spec is removed
	).Result()
}

func (r *Reconciler) newScope(ctx context.Context, req ctrl.Request) (*scope, error) {
	if req.Namespace != r.Namespace {
		return nil, nil
	}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, cm); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if cm.Labels[fixityv1.RecreateLabel] != "true" || !cm.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	spec, err := drift.ReadSaved(cm)
	if err != nil {
		// Not a spec the operator wrote: never create a pod from it, say so once per change.
		ctrl.LoggerFrom(ctx).Error(err, "Ignoring a saved pod spec")
		return nil, nil
	}
	s := &scope{saved: cm, spec: spec, current: &corev1.Pod{}}
	if err := r.APIReader.Get(ctx, spec.Pod, s.current); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		s.current = nil
	}
	return s, nil
}

// deleteDrifted deletes the drifted pod (UID precondition: never a pod created since) and waits
// until it is gone. A pod of another UID under the name means the recreation is done.
func (r *Reconciler) deleteDrifted(ctx context.Context, s *scope) reconcile.Outcome {
	switch {
	case s.current == nil:
		return reconcile.Next()
	case s.current.UID != s.spec.Old:
		// Back already (an earlier attempt of ours, or someone else): done.
		if err := r.drop(ctx, s); err != nil {
			return reconcile.Fail(err)
		}
		return reconcile.Stop()
	case !s.current.DeletionTimestamp.IsZero():
		return reconcile.Wait(waitGoing, "", "the drifted pod is terminating")
	}
	if err := r.Delete(ctx, s.current, client.Preconditions{UID: &s.spec.Old}); client.IgnoreNotFound(err) != nil {
		return reconcile.Fail(fmt.Errorf("deleting drifted bare pod %s: %w", s.spec.Pod, err))
	}
	ctrl.LoggerFrom(ctx).Info("Deleted drifted bare pod; it is created again once gone", "pod", s.spec.Pod, "savedIn", klog.KObj(s.saved))
	return reconcile.Wait(waitGoing, "", "the drifted pod is being deleted")
}

// create creates the pod from its saved spec. Admission may refuse it (its image no longer
// verifies): the spec stays saved and the refusal is told, so the pod is never silently lost.
func (r *Reconciler) create(ctx context.Context, s *scope) reconcile.Outcome {
	pod := s.spec.Spec.DeepCopy()
	err := r.Create(ctx, pod)
	switch {
	case apierrors.IsAlreadyExists(err):
		return reconcile.Wait(waitGoing, "", "a pod of that name exists")
	case err != nil:
		r.Events.Eventf(s.saved, nil, corev1.EventTypeWarning, fixityv1.EventRecreateFailed, "Replace", "Recreating drifted pod %s: %v", s.spec.Pod, err)
		return reconcile.Fail(fmt.Errorf("recreating pod %s: %w", s.spec.Pod, err))
	}
	ctrl.LoggerFrom(ctx).Info("Recreated drifted bare pod", "pod", klog.KObj(pod))
	for _, p := range s.spec.Policies {
		r.Ledger.Replaced(ctx, p, metrics.MethodRecreated)
		r.Events.Eventf(pod, nil, corev1.EventTypeNormal, fixityv1.EventRecreated, "Replace", "[policy %s] Drifted bare pod recreated from its admitted spec", p)
	}
	return reconcile.Next()
}

func (r *Reconciler) finish(ctx context.Context, s *scope) reconcile.Outcome {
	return reconcile.Fail(r.drop(ctx, s))
}

func (r *Reconciler) drop(ctx context.Context, s *scope) error {
	if err := r.Delete(ctx, s.saved); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing saved spec %s/%s: %w", s.saved.Namespace, s.saved.Name, err)
	}
	return nil
}

// SetupWithManager registers the controller on the saved specs in the operator's namespace.
// It does not watch pods: a recreation waits on the pod it deleted by requeueing (waitGoing),
// which is rare enough that a second handler on every pod event of the cluster would cost more.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	saved := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetLabels()[fixityv1.RecreateLabel] == "true"
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}, builder.WithPredicates(saved)).
		Named("recreate").
		Complete(r)
}
