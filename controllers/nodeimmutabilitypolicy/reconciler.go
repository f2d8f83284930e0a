package nodeimmutabilitypolicy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/patch"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// coalesce gathers the baseline changes of a drain or a fleet recording into one status write.
const coalesce = time.Second

// resync bounds how stale the counts can get if a change was missed.
const resync = time.Minute

// Reconciler reconciles a NodeImmutabilityPolicy's status.
type Reconciler struct {
	client.Client
	// Namespace is the operator's namespace, where the replacement counts are kept.
	Namespace string
}

// +kubebuilder:rbac:groups=fixity.dev,resources=nodeimmutabilitypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=nodeimmutabilitypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fixity.dev,resources=nodebaselines,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// Reconcile brings one node policy's status up to date.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	p := &fixityv1.NodeImmutabilityPolicy{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetNodePolicy(req.Name)
			return ctrl.Result{}, remediation.ForgetNodePolicy(ctx, r.Client, r.Namespace, req.Name)
		}
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	defer patch.NewHelper(p, r.Client).Finish(ctx, p, &retErr)

	outcome := reconcile.Worst(r.reconcileSpec(p), r.reconcileNodes(ctx, p))
	setReady(p, outcome)
	switch outcome.Kind {
	case reconcile.Terminal:
		ctrl.LoggerFrom(ctx).Info("Node policy cannot be enforced as written", "policy", klog.KObj(p), "reason", outcome.Message)
		return ctrl.Result{}, nil
	case reconcile.Retry:
		return ctrl.Result{}, outcome.Err
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// reconcileSpec checks what the schema cannot express.
func (r *Reconciler) reconcileSpec(p *fixityv1.NodeImmutabilityPolicy) reconcile.Outcome {
	var problems []error
	if sel := p.Spec.NodeSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			problems = append(problems, fmt.Errorf("spec.nodeSelector: %w", err))
		}
	}
	if e := p.Spec.Expect; e != nil && e.OSImageRegExp != "" {
		if _, err := regexp.Compile(e.OSImageRegExp); err != nil {
			problems = append(problems, fmt.Errorf("spec.expect.osImageRegExp: %w", err))
		}
	}
	if _, err := nodedrift.Budget(p, 1); err != nil {
		problems = append(problems, fmt.Errorf("spec.maxUnavailable: %w", err))
	}
	if len(problems) > 0 {
		return reconcile.Invalid(fixityv1.InvalidSpecReason, errors.Join(problems...))
	}
	return reconcile.Next()
}

// reconcileNodes publishes the counts, the breaker's state and the gauges.
func (r *Reconciler) reconcileNodes(ctx context.Context, p *fixityv1.NodeImmutabilityPolicy) reconcile.Outcome {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return reconcile.Fail(err)
	}
	var baselines fixityv1.NodeBaselineList
	if err := r.List(ctx, &baselines); err != nil {
		return reconcile.Fail(err)
	}
	byName := make(map[string]*fixityv1.NodeBaseline, len(baselines.Items))
	for i := range baselines.Items {
		byName[baselines.Items[i].Name] = &baselines.Items[i]
	}
	var matched, drifted, replacing, stuck int
	byCheck := map[fixityv1.NodeCheck]int{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !nodedrift.Matches(p, n) {
			continue
		}
		matched++
		b := byName[n.Name]
		if b == nil || b.Spec.NodeUID != string(n.UID) {
			continue
		}
		// Drifted under this policy's own checks, not another's.
		if fs := nodedrift.Compare(b, n, p); len(fs) > 0 {
			drifted++
			seen := map[fixityv1.NodeCheck]bool{}
			for _, f := range fs {
				if !seen[f.Check] {
					seen[f.Check] = true
					byCheck[f.Check]++
				}
			}
		}
	}
	for _, b := range baselines.Items {
		if nodedrift.Disrupted(&b) && slices.Contains(nodedrift.DisruptedUnder(&b), p.Name) {
			replacing++
			if b.Status.Phase == fixityv1.NodeDrainStuck {
				stuck++
			}
		}
	}
	replaced, ok, err := remediation.Count(ctx, r.Client, r.Namespace, p)
	if err != nil {
		return reconcile.Fail(err)
	}
	if ok && replaced > p.Status.ReplacedNodes {
		p.Status.ReplacedNodes = replaced
	}
	p.Status.MatchedNodes, p.Status.DriftedNodes, p.Status.ReplacingNodes = int32(matched), int32(drifted), int32(replacing)
	for _, c := range []fixityv1.NodeCheck{fixityv1.CheckKernelVersion, fixityv1.CheckOSImage, fixityv1.CheckKubeletVersion,
		fixityv1.CheckContainerRuntimeVersion, fixityv1.CheckIdentity, fixityv1.CheckReboot, fixityv1.CheckLabels, fixityv1.CheckTaints} {
		metrics.NodesDrifted.WithLabelValues(p.Name, string(c)).Set(float64(byCheck[c]))
	}
	metrics.NodesReplacing.WithLabelValues(p.Name).Set(float64(replacing))
	metrics.NodeDrainsStuck.WithLabelValues(p.Name).Set(float64(stuck))

	allowed, msg := nodedrift.Breaker(p, matched, drifted)
	cond := remediation.AllowedCondition(allowed, msg, p.Generation, metrics.NodeBreakerOpen.WithLabelValues(p.Name))
	if nodedrift.ActionOf(p) == fixityv1.NodeReport {
		cond.Message = "Drifted nodes are reported, not touched (mode Audit or action Report); " + msg
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
	return reconcile.Next()
}

// setReady derives Ready from the outcome, in one place.
func setReady(p *fixityv1.NodeImmutabilityPolicy, o reconcile.Outcome) {
	mode := p.Spec.Mode
	if mode == "" {
		mode = fixityv1.ModeEnforce
	}
	reconcile.SetConditions(&p.Status.Conditions, o, p.Generation, fmt.Sprintf("Node policy is enforced in mode %s", mode))
}

// SetupWithManager registers the reconciler: policies (spec changes), and every baseline or
// node change, coalesced, for the counts.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.Funcs{}
	enqueueAll := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
		var list fixityv1.NodeImmutabilityPolicyList
		if err := r.List(ctx, &list); err != nil {
			return
		}
		for i := range list.Items {
			q.AddAfter(crreconcile.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}}, coalesce)
		}
	}
	all.CreateFunc = func(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
		enqueueAll(ctx, q)
	}
	all.UpdateFunc = func(ctx context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
		enqueueAll(ctx, q)
	}
	all.DeleteFunc = func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
		enqueueAll(ctx, q)
	}
	counts := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetLabels()[fixityv1.LedgerLabel] == "node-replaced"
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&fixityv1.NodeImmutabilityPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fixityv1.NodeBaseline{}, all).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeIdentityOrLabels)).
		Watches(&corev1.ConfigMap{}, all, builder.WithPredicates(counts)).
		Named("nodeimmutabilitypolicy").
		Complete(r)
}

// nodeIdentityOrLabels lets through node changes that can change a count: creation, deletion,
// labels (matching) and nodeInfo (drift).
var nodeIdentityOrLabels = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
	return o.Status.NodeInfo != n.Status.NodeInfo || !maps.Equal(o.Labels, n.Labels) || len(o.Spec.Taints) != len(n.Spec.Taints)
}}
