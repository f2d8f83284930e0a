package accessapproval

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/patch"
	"github.com/fixity-dev/fixity/internal/reconcile"
)

// Reconciler reconciles an AccessApproval.
type Reconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=fixity.dev,resources=accessapprovals,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=accessapprovals/status,verbs=get;update;patch

// Reconcile brings one approval's status up to date.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	a := &fixityv1.AccessApproval{}
	if err := r.Get(ctx, req.NamespacedName, a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	defer patch.NewHelper(a, r.Client).Finish(ctx, a, &retErr)

	a.Status.Approver = grants.Approver(a)
	g := &fixityv1.AccessGrant{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Grant}, g); apierrors.IsNotFound(err) {
		g = nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading AccessGrant %s/%s: %w", a.Namespace, a.Spec.Grant, err)
	}
	reason, why := grants.Counts(g, a)
	if reason == fixityv1.CountedReason {
		var list fixityv1.AccessApprovalList
		if err := r.List(ctx, &list, client.InNamespace(a.Namespace)); err != nil {
			return ctrl.Result{}, fmt.Errorf("listing AccessApprovals in %s: %w", a.Namespace, err)
		}
		for _, c := range grants.CountApprovals(g, list.Items) {
			if c.User == a.Status.Approver && c.Approval != a.Name {
				reason, why = fixityv1.NotCountedReason, fmt.Sprintf("%s approved the grant already in AccessApproval %s", c.User, c.Approval)
			}
		}
	}
	setReady(a, reason, why)
	return ctrl.Result{}, nil
}

// setReady derives Ready in one place.
func setReady(a *fixityv1.AccessApproval, reason, why string) {
	cond := metav1.Condition{Type: fixityv1.ReadyCondition, Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: a.Generation,
		Message: fmt.Sprintf("%s's approval counts for AccessGrant %s/%s", a.Status.Approver, a.Namespace, a.Spec.Grant)}
	progress := reconcile.Settled
	switch reason {
	case fixityv1.CountedReason:
	case fixityv1.GrantNotFoundReason:
		// Admission refuses an approval of a grant that does not exist: its grant was deleted
		// since, and the approval is history: neither stalled nor reconciling.
		cond.Status, cond.Message = metav1.ConditionFalse, "The approval does not count: "+why
	default:
		// A second approval by the same user, one being deleted, no approver: no wait helps.
		cond.Status, cond.Message, progress = metav1.ConditionFalse, "The approval does not count: "+why, reconcile.Stalled
	}
	reconcile.SetReady(&a.Status.Conditions, cond, progress)
}

// SetupWithManager registers the reconciler. A grant's change (created, deleted) can change
// whether its approvals count.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&fixityv1.AccessApproval{}).
		Watches(&fixityv1.AccessGrant{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []ctrl.Request {
			var list fixityv1.AccessApprovalList
			if err := mgr.GetClient().List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			var out []ctrl.Request
			for i := range list.Items {
				if list.Items[i].Spec.Grant == o.GetName() {
					out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
				}
			}
			return out
		})).
		Named("accessapproval").
		Complete(r)
}
