package accessreview

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/policy"
)

// Reconciler reviews the cluster's RBAC. There is one review for the whole cluster: every watch
// maps to the same request, so a burst of changes is one review.
type Reconciler struct {
	client.Client
	Reviewer *accessreview.Reviewer
	Store    *accessreview.Store
	Matcher  *policy.Matcher
	Events   recorder.EventRecorder
	// Operator is the operator's own username, never a finding.
	Operator string
	// Wake tells the policy controller that the findings changed.
	Wake chan<- event.GenericEvent
}

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;clusterroles;rolebindings;clusterrolebindings,verbs=get;list;watch
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// cluster is the one request.
var cluster = ctrl.Request{NamespacedName: types.NamespacedName{Name: "cluster"}}

// resync catches what no watch sees: authorizers other than RBAC, and a failed review.
const resync = 5 * time.Minute

// Reconcile reviews every subject the bindings name.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var crbs rbacv1.ClusterRoleBindingList
	if err := r.List(ctx, &crbs); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing ClusterRoleBindings: %w", err)
	}
	var rbs rbacv1.RoleBindingList
	if err := r.List(ctx, &rbs); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing RoleBindings: %w", err)
	}
	unguarded, err := r.unguarded(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	subjects := accessreview.Subjects(crbs.Items, rbs.Items, r.Operator)
	findings, err := r.Reviewer.Review(ctx, subjects, unguarded)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reviewing the RBAC of %d subjects: %w", len(subjects), err)
	}
	added, changed := r.Store.Set(findings)
	for _, f := range added {
		r.announce(ctx, f, &crbs, &rbs)
	}
	if changed {
		log.Info("Reviewed who can reach pods past Fixity", "subjects", len(subjects), "findings", len(findings),
			"subjectsWithFindings", accessreview.SubjectCount(findings))
		r.wakePolicies(ctx)
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// unguarded are the namespaces where no Enforce policy denies exec, the control plane's included.
func (r *Reconciler) unguarded(ctx context.Context) ([]string, error) {
	var nss corev1.NamespaceList
	if err := r.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	var out []string
	for i := range nss.Items {
		policies, err := r.Matcher.ForNamespace(ctx, nss.Items[i].Name)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(policies, func(p fixityv1.ImmutabilityPolicy) bool {
			return p.Spec.Mode != fixityv1.ModeAudit && p.Spec.Runtime.Exec != fixityv1.Allow
		}) {
			out = append(out, nss.Items[i].Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// announce emits a Warning Event on each binding of the finding's subject that can grant it.
func (r *Reconciler) announce(ctx context.Context, f accessreview.Finding, crbs *rbacv1.ClusterRoleBindingList, rbs *rbacv1.RoleBindingList) {
	bindings := accessreview.Granting(f)
	note := f.String() + " (bound by " + strings.Join(bindings, ", ") + ")"
	ctrl.LoggerFrom(ctx).Info("Access past Fixity", "subject", f.Subject.String(), "door", f.Door, "namespaces", f.Namespaces)
	for _, b := range bindings {
		kind, ref, _ := strings.Cut(b, " ")
		var obj client.Object
		switch kind {
		case "ClusterRoleBinding":
			if i := slices.IndexFunc(crbs.Items, func(x rbacv1.ClusterRoleBinding) bool { return x.Name == ref }); i >= 0 {
				obj = &crbs.Items[i]
			}
		case "RoleBinding":
			if i := slices.IndexFunc(rbs.Items, func(x rbacv1.RoleBinding) bool { return x.Namespace+"/"+x.Name == ref }); i >= 0 {
				obj = &rbs.Items[i]
			}
		}
		if obj != nil {
			r.Events.Eventf(obj, nil, corev1.EventTypeWarning, fixityv1.EventAccessPastFixity, "Review", "%s", note)
		}
	}
}

func (r *Reconciler) wakePolicies(ctx context.Context) {
	if r.Wake == nil {
		return
	}
	var list fixityv1.ImmutabilityPolicyList
	if err := r.List(ctx, &list); err != nil {
		return // the policy controller's resync catches up
	}
	for i := range list.Items {
		select {
		case r.Wake <- event.GenericEvent{Object: &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: list.Items[i].Name}}}:
		default:
		}
	}
}

// SetupWithManager registers the reconciler; every watched change maps to the one review.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []ctrl.Request { return []ctrl.Request{cluster} })
	return ctrl.NewControllerManagedBy(mgr).
		Named("accessreview").
		Watches(&rbacv1.ClusterRoleBinding{}, one).
		Watches(&rbacv1.RoleBinding{}, one).
		Watches(&rbacv1.ClusterRole{}, one).
		Watches(&rbacv1.Role{}, one).
		// Only what changes which namespaces a policy denies exec in: a namespace's labels, a
		// policy's spec. Status writes (drift counts, this review's own) would review in a loop.
		Watches(&corev1.Namespace{}, one, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&fixityv1.ImmutabilityPolicy{}, one, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}
