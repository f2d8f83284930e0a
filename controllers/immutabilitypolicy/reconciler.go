package immutabilitypolicy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/patch"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Reconciler reconciles an ImmutabilityPolicy.
type Reconciler struct {
	client.Client
	// Drift is what drift detection found per pod; nil leaves the drift status alone.
	Drift *drift.Tracker
	// DriftChanged names policies whose drift or replacement counts changed, so their status
	// follows promptly.
	DriftChanged <-chan event.GenericEvent
	// Namespace is the operator's namespace, where the replacement counts are kept.
	Namespace string
	// Authorities compiles the policy's signing authorities (keys, Secrets, trust roots), so
	// that one that cannot be used shows on the policy; nil skips the check.
	Authorities *images.Authorities
	// Access is the latest review of who can reach pods past Fixity; nil leaves it out of the
	// status.
	Access *accessreview.Store
}

// authoritiesRecheck is how often a policy whose authorities cannot be used looks again: the
// Secrets and ConfigMaps they reference are not watched.
const authoritiesRecheck = time.Minute

// driftCoalesce is how long drift count changes are gathered before the status is updated.
const driftCoalesce = time.Second

// resync bounds how stale the drift counts in status can get if a change notice was missed.
const resync = 30 * time.Second

// +kubebuilder:rbac:groups=fixity.dev,resources=immutabilitypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=immutabilitypolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the status of one policy up to date with its spec.
//
// No finalizer: the policy owns nothing outside itself yet, and a finalizer with nothing to clean
// up would only block deletion while the operator is down.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)

	policy := &fixityv1.ImmutabilityPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		if apierrors.IsNotFound(err) { // a policy's series and counts go with the policy
			metrics.ForgetPolicy(req.Name)
			return ctrl.Result{}, remediation.ForgetPolicy(ctx, r.Client, r.Namespace, req.Name)
		}
		return ctrl.Result{}, err
	}
	if !policy.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	defer patch.NewHelper(policy, r.Client).Finish(ctx, policy, &retErr)

	// Every phase runs, so the status is whole even when the spec is wrong; Ready is derived
	// from their outcomes in one place.
	outcome := reconcile.Worst(r.reconcileSpec(ctx, policy), r.reconcileAuthorities(ctx, policy), r.reconcileDrift(ctx, policy), r.reconcileAccess(ctx, policy))
	setReady(policy, outcome)
	switch outcome.Kind {
	case reconcile.Terminal:
		// Only an edit fixes it, and the status says so: no retry, no error log per look.
		log.Info("Policy cannot be enforced as written", "policy", klog.KObj(policy), "reason", outcome.Message)
		return ctrl.Result{}, nil
	case reconcile.Retry:
		return ctrl.Result{}, outcome.Err
	case reconcile.Waiting:
		return ctrl.Result{RequeueAfter: outcome.After}, nil
	}
	if r.Drift != nil {
		return ctrl.Result{RequeueAfter: resync}, nil
	}
	return ctrl.Result{}, nil
}

// maxNamed is how many findings the AccessReviewed condition names; the Events name them all.
const maxNamed = 5

// reconcileAccess publishes the latest RBAC review: every policy carries it, since each door it
// finds leads past every policy.
func (r *Reconciler) reconcileAccess(_ context.Context, p *fixityv1.ImmutabilityPolicy) reconcile.Outcome {
	findings, reviewed := r.Access.Get()
	if !reviewed {
		return reconcile.Next()
	}
	p.Status.AccessFindings = int32(accessreview.SubjectCount(findings))
	cond := metav1.Condition{Type: fixityv1.AccessReviewedCondition, Status: metav1.ConditionTrue, Reason: fixityv1.NoBypassReason,
		ObservedGeneration: p.Generation, Message: "No user, group or service account outside the control plane can reach pods past Fixity"}
	if len(findings) > 0 {
		var named []string
		for _, f := range findings[:min(len(findings), maxNamed)] {
			named = append(named, f.String())
		}
		more := ""
		if len(findings) > maxNamed {
			more = fmt.Sprintf("; and %d more", len(findings)-maxNamed)
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, fixityv1.BypassFoundReason
		cond.Message = fmt.Sprintf("%d subject(s) can reach pods past Fixity (Events %s on their bindings): %s%s",
			p.Status.AccessFindings, fixityv1.EventAccessPastFixity, strings.Join(named, "; "), more)
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
	return reconcile.Next()
}

// reconcileDrift publishes the drift counts, the circuit breaker's state (condition and gauge,
// here only) and the drifted pods held back.
func (r *Reconciler) reconcileDrift(ctx context.Context, p *fixityv1.ImmutabilityPolicy) reconcile.Outcome {
	if r.Drift == nil {
		return reconcile.Next()
	}
	// The ledger's count only grows; a status ahead of it (written before counts were kept in
	// the ledger) is kept.
	replaced, ok, err := remediation.Count(ctx, r.Client, r.Namespace, p)
	if err != nil {
		return reconcile.Fail(err)
	}
	if ok && replaced > p.Status.ReplacedPods {
		p.Status.ReplacedPods = replaced
	}
	counts := r.Drift.Counts(p.Name)
	p.Status.MatchedPods, p.Status.DriftedPods = int32(counts.Matched), int32(counts.Drifted)
	allowed, msg := drift.Breaker(p, counts)
	cond := remediation.AllowedCondition(allowed, msg, p.Generation, metrics.BreakerOpen.WithLabelValues(p.Name))
	if !drift.Replaces(p) {
		cond.Message = "Drifted pods are reported, not replaced (" + reportReason(p) + "); " + msg
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
	meta.SetStatusCondition(&p.Status.Conditions, heldCondition(p, r.Drift.Held(p.Name)))
	return reconcile.Next()
}

// maxHeldShown bounds how many held pods the condition message names.
const maxHeldShown = 3

// heldCondition says whether every drifted pod the policy would replace can be, and if not,
// which are kept and what to fix, most common reason first.
func heldCondition(p *fixityv1.ImmutabilityPolicy, held map[types.NamespacedName]drift.Hold) metav1.Condition {
	p.Status.HeldPods = int32(len(held))
	byReason := map[string]int{}
	for _, h := range held {
		byReason[h.Reason]++
	}
	for _, reason := range []string{fixityv1.ReplacementWouldBeDeniedReason, fixityv1.ReplacementStuckReason} {
		metrics.HeldPods.WithLabelValues(p.Name, reason).Set(float64(byReason[reason]))
	}
	cond := metav1.Condition{
		Type: fixityv1.ReplacementsProceedingCondition, Status: metav1.ConditionTrue, Reason: fixityv1.ProceedingReason,
		Message: "No drifted pod is held back", ObservedGeneration: p.Generation,
	}
	if len(held) == 0 {
		return cond
	}
	keys := slices.SortedFunc(maps.Keys(held), func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	reason := fixityv1.ReplacementWouldBeDeniedReason
	if byReason[fixityv1.ReplacementStuckReason] > byReason[reason] {
		reason = fixityv1.ReplacementStuckReason
	}
	var lines []string
	for _, k := range keys[:min(len(keys), maxHeldShown)] {
		lines = append(lines, held[k].Message)
	}
	if len(keys) > maxHeldShown {
		lines = append(lines, fmt.Sprintf("and %d more", len(keys)-maxHeldShown))
	}
	cond.Status, cond.Reason = metav1.ConditionFalse, reason
	cond.Message = fmt.Sprintf("%d drifted pods are kept running: %s", len(held), strings.Join(lines, " | "))
	return cond
}

func reportReason(p *fixityv1.ImmutabilityPolicy) string {
	if p.Spec.Mode == fixityv1.ModeAudit {
		return "mode Audit"
	}
	return "drift.action Report"
}

// reconcileSpec checks what the CRD schema cannot express.
func (r *Reconciler) reconcileSpec(_ context.Context, p *fixityv1.ImmutabilityPolicy) reconcile.Outcome {
	var problems []error
	if sel := p.Spec.Match.NamespaceSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			problems = append(problems, fmt.Errorf("spec.match.namespaceSelector: %w", err))
		}
	}
	if sel := p.Spec.Match.PodSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			problems = append(problems, fmt.Errorf("spec.match.podSelector: %w", err))
		}
	}
	if v := p.Spec.Images.Verify; v != nil {
		for i, a := range v.Authorities {
			if a.Key != nil && a.Key.PublicKey != "" {
				if _, err := images.ParsePublicKey([]byte(a.Key.PublicKey)); err != nil {
					problems = append(problems, fmt.Errorf("spec.images.verify.authorities[%d].key.publicKey: %w", i, err))
				}
			}
			if a.Keyless == nil || a.Keyless.SubjectRegExp == "" {
				continue
			}
			if _, err := regexp.Compile(a.Keyless.SubjectRegExp); err != nil {
				problems = append(problems, fmt.Errorf("spec.images.verify.authorities[%d].keyless.subjectRegExp: %w", i, err))
			}
		}
	}
	if _, err := images.CompileAttestations(p); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return reconcile.Invalid(fixityv1.InvalidSpecReason, errors.Join(problems...))
	}
	return reconcile.Next()
}

// reconcileAuthorities compiles the signing authorities as admission does, so that a missing
// Secret or a malformed trust root is a condition on the policy, not only a denial.
func (r *Reconciler) reconcileAuthorities(ctx context.Context, p *fixityv1.ImmutabilityPolicy) reconcile.Outcome {
	if r.Authorities == nil || p.Spec.Images.Verify == nil {
		return reconcile.Next()
	}
	if _, err := r.Authorities.Compile(ctx, p); err != nil {
		return reconcile.Wait(authoritiesRecheck, fixityv1.AuthoritiesUnusableReason,
			fmt.Sprintf("Images this policy requires signatures of are denied: %v", err))
	}
	return reconcile.Next()
}

// setReady derives Ready from the reconcile's outcome, in one place: a terminal outcome's reason
// (InvalidSpec), ReconcileError for one that is retried, Active otherwise.
func setReady(p *fixityv1.ImmutabilityPolicy, o reconcile.Outcome) {
	reconcile.SetConditions(&p.Status.Conditions, o, p.Generation, fmt.Sprintf("Policy is enforced in mode %s", p.Spec.Mode))
}

// SetupWithManager registers the reconciler. Status-only changes do not trigger it; changes of
// the drift counts do.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&fixityv1.ImmutabilityPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("immutabilitypolicy")
	if r.DriftChanged != nil {
		// A rollout changes the counts with every pod; one status update per policy per
		// coalesce interval is enough, and spares the API server a write per pod.
		coalesce := handler.Funcs{GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(crreconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}, driftCoalesce)
		}}
		b = b.WatchesRawSource(source.Channel(r.DriftChanged, coalesce))
	}
	// A replacement count changed in the ledger: publish it once the cache has it.
	counts := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetLabels()[fixityv1.LedgerLabel] == "replaced"
	})
	b = b.Watches(&corev1.ConfigMap{}, handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(policyOfCount(e.Object), driftCoalesce)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(policyOfCount(e.ObjectNew), driftCoalesce)
		},
	}, builder.WithPredicates(counts))
	return b.Complete(r)
}

// policyOfCount is the policy a replacement count ConfigMap is for.
func policyOfCount(o client.Object) crreconcile.Request {
	return crreconcile.Request{NamespacedName: client.ObjectKey{Name: o.GetAnnotations()[fixityv1.LedgerPolicyAnnotation]}}
}
