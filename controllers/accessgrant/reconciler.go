package accessgrant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/patch"
	"github.com/fixity-dev/fixity/internal/reconcile"
)

// Reconciler reconciles an AccessGrant.
type Reconciler struct {
	client.Client
	Events recorder.EventRecorder
	// Clock is read once per reconcile, so that the phase and the requeue agree.
	Clock clock.PassiveClock
	// Grants counts a grant's approvals and how many its namespace's policies ask for.
	Grants *grants.Finder
}

// +kubebuilder:rbac:groups=fixity.dev,resources=accessgrants,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=fixity.dev,resources=accessgrants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fixity.dev,resources=accessgrants/finalizers,verbs=update
// +kubebuilder:rbac:groups=fixity.dev,resources=accessapprovals,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Reconcile brings one grant's status and its pods' taints up to date.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	g := &fixityv1.AccessGrant{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.revoke(ctx, g)
	}
	// The finalizer lets deletion revoke: taint and announce before the grant disappears.
	if !controllerutil.ContainsFinalizer(g, grants.Finalizer) {
		before := g.DeepCopy()
		controllerutil.AddFinalizer(g, grants.Finalizer)
		if err := r.Patch(ctx, g, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	defer patch.NewHelper(g, r.Client).Finish(ctx, g, &retErr)

	now := r.now()
	outcome := reconcile.Worst(r.reconcileRequester(ctx, g), r.reconcilePhase(ctx, g, now), r.reconcileTaints(ctx, g))
	setReady(g, outcome)
	switch {
	case outcome.Kind == reconcile.Retry:
		return ctrl.Result{}, outcome.Err
	case g.Status.Phase == fixityv1.GrantActive || g.Status.Phase == fixityv1.GrantPending:
		// Wake up exactly when the grant ends, or expires unapproved; no polling. Approvals
		// wake it through the watch. Active or Pending at now means that time is after now.
		return ctrl.Result{RequeueAfter: max(g.Status.ExpiresAt.Sub(now), time.Millisecond)}, nil
	}
	return ctrl.Result{}, nil
}

func (r *Reconciler) reconcileRequester(_ context.Context, g *fixityv1.AccessGrant) reconcile.Outcome {
	g.Status.Requester = grants.Requester(g)
	if g.Status.Requester == "" {
		// Only possible if the grant was created while the webhook was not installed; no retry
		// fixes that.
		return reconcile.Invalid(fixityv1.NoRequesterReason, errors.New("the grant has no requester: it was not admitted by the Fixity webhook, so nobody may use it"))
	}
	return reconcile.Next()
}

func (r *Reconciler) reconcilePhase(ctx context.Context, g *fixityv1.AccessGrant, now time.Time) reconcile.Outcome {
	f := r.Grants
	if f == nil {
		f = &grants.Finder{Reader: r.Client}
	}
	st, err := f.State(ctx, g, now)
	if err != nil {
		return reconcile.Fail(err)
	}
	was, counted := g.Status.Phase, g.Status.Approvals
	g.Status.ExpiresAt = &metav1.Time{Time: st.ExpiresAt}
	g.Status.RequiredApprovals = st.Required
	g.Status.Approvals = st.Approvals[:min(len(st.Approvals), maxApprovals)]
	g.Status.Phase = st.Phase
	for _, a := range st.Approvals {
		if slices.ContainsFunc(counted, func(c fixityv1.GrantApproval) bool { return c.User == a.User && c.Approval == a.Approval }) {
			continue
		}
		note := fmt.Sprintf("%s approved the grant in AccessApproval %s (%d of %d needed)", a.User, a.Approval, min(int32(len(st.Approvals)), st.Required), st.Required)
		if st.Phase == fixityv1.GrantActive && was != fixityv1.GrantActive {
			note += fmt.Sprintf("; %s may use it until %s", g.Status.Requester, st.ExpiresAt.UTC().Format(time.RFC3339))
		}
		ctrl.LoggerFrom(ctx).Info("Grant approved", "grant", klog.KObj(g), "approver", a.User, "approval", a.Approval)
		r.Events.Eventf(g, nil, corev1.EventTypeNormal, fixityv1.EventGrantApproved, "Approve", note)
	}
	if st.Phase == fixityv1.GrantExpired && was != fixityv1.GrantExpired {
		ctrl.LoggerFrom(ctx).Info("Grant expired", "grant", klog.KObj(g), "expiresAt", st.ExpiresAt, "approvals", len(st.Approvals), "requiredApprovals", st.Required)
		how := fmt.Sprintf("expired at %s", st.ExpiresAt.UTC().Format(time.RFC3339))
		if st.Missing() > 0 {
			how += fmt.Sprintf(" without the %d approval(s) it needed", st.Required)
		}
		r.announceEnd(ctx, g, how)
	}
	return reconcile.Next()
}

// maxApprovals is the most status.approvals keeps (the schema's maxItems).
const maxApprovals = 16

// reconcileTaints marks every pod the grant let someone into, so it is replaced once the grant
// has ended: kubectl debug sessions, which are tainted here rather than at admission, and any
// pod whose taint at admission was lost.
func (r *Reconciler) reconcileTaints(ctx context.Context, g *fixityv1.AccessGrant) reconcile.Outcome {
	var errs []error
	done := map[string]bool{}
	for _, s := range g.Status.Sessions {
		if done[s.Pod] {
			continue
		}
		done[s.Pod] = true
		pod := &corev1.Pod{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: s.Pod}, pod); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("reading pod %s/%s: %w", g.Namespace, s.Pod, err))
			}
			continue
		}
		if _, ok := pod.Annotations[fixityv1.TaintedAnnotation]; ok {
			continue
		}
		if err := grants.Taint(ctx, r.Client, g, pod, s); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
			continue
		}
		ctrl.LoggerFrom(ctx).Info("Tainted pod", "pod", klog.KObj(pod), "grant", klog.KObj(g))
	}
	return reconcile.Fail(errors.Join(errs...))
}

// revoke ends a deleted grant: its pods are tainted and told, then the finalizer goes.
func (r *Reconciler) revoke(ctx context.Context, g *fixityv1.AccessGrant) error {
	if !controllerutil.ContainsFinalizer(g, grants.Finalizer) {
		return nil
	}
	if o := r.reconcileTaints(ctx, g); o.Err != nil {
		return o.Err
	}
	if g.Status.Phase != fixityv1.GrantRevoked && g.Status.Phase != fixityv1.GrantExpired {
		before := g.DeepCopy()
		g.Status.Phase = fixityv1.GrantRevoked
		setReady(g, reconcile.Next())
		if err := r.Status().Patch(ctx, g, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("marking grant revoked: %w", err)
		}
		ctrl.LoggerFrom(ctx).Info("Grant revoked", "grant", klog.KObj(g))
		r.announceEnd(ctx, g, "was revoked (deleted)")
	}
	before := g.DeepCopy()
	controllerutil.RemoveFinalizer(g, grants.Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, g, client.MergeFrom(before)))
}

// announceEnd emits an Event on the grant and on each pod it let someone into: those pods are
// now due for replacement.
func (r *Reconciler) announceEnd(ctx context.Context, g *fixityv1.AccessGrant, how string) {
	r.Events.Eventf(g, nil, corev1.EventTypeNormal, fixityv1.EventGrantEnded, "End", "Grant %s; %d session(s) recorded", how, len(g.Status.Sessions))
	seen := map[string]bool{}
	for _, s := range g.Status.Sessions {
		if seen[s.Pod] {
			continue
		}
		seen[s.Pod] = true
		pod := &corev1.Pod{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: s.Pod}, pod); err != nil {
			continue
		}
		r.Events.Eventf(pod, g, corev1.EventTypeWarning, fixityv1.EventReplacementDue, "End",
			"Grant %s/%s %s; this pod was accessed interactively and must be replaced by a fresh one", g.Namespace, g.Name, how)
	}
}

// setReady derives Ready from the phase and the phases' outcome, in one place.
func setReady(g *fixityv1.AccessGrant, o reconcile.Outcome) {
	cond := metav1.Condition{Type: fixityv1.ReadyCondition, ObservedGeneration: g.Generation}
	progress := reconcile.ProgressOf(o)
	switch {
	case o.Kind == reconcile.Terminal:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, o.Reason, o.Message
	case o.Kind == reconcile.Retry:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, fixityv1.ReconcileErrorReason, o.Message
	case g.Status.Phase == fixityv1.GrantActive:
		cond.Status, cond.Reason = metav1.ConditionTrue, string(fixityv1.GrantActive)
		cond.Message = fmt.Sprintf("%s may use %v until %s", g.Status.Requester, g.Spec.Access, g.Status.ExpiresAt.UTC().Format(time.RFC3339))
	case g.Status.Phase == fixityv1.GrantPending:
		// Waiting for people: in progress, as a rollout waiting for pods is.
		progress = reconcile.Progressing
		cond.Status, cond.Reason = metav1.ConditionFalse, string(fixityv1.GrantPending)
		cond.Message = fmt.Sprintf("Waiting for %d more approval(s) by users other than %s (AccessApproval with spec.grant %s); expires unapproved at %s",
			g.Status.RequiredApprovals-int32(len(g.Status.Approvals)), g.Status.Requester, g.Name, g.Status.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(g.Status.Phase)
		// Ended is as far as a grant goes: neither stalled nor reconciling (kstatus reads the
		// False Ready alone as in progress, as it does for any kind).
		cond.Message = "The grant has ended and lets nobody in"
	}
	reconcile.SetReady(&g.Status.Conditions, cond, progress)
}

// SetupWithManager registers the reconciler. Status changes (new sessions) trigger it too.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&fixityv1.AccessGrant{}).
		// An approval wakes the grant it names: it may become Active now.
		Watches(&fixityv1.AccessApproval{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			a, ok := o.(*fixityv1.AccessApproval)
			if !ok {
				return nil
			}
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.Grant}}}
		})).
		Named("accessgrant").
		Complete(r)
}
