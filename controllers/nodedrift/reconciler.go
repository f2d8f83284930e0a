package nodedrift

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/patch"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Requeue intervals; a node is also looked at again whenever it, its baseline, its policies or
// the pods on it change.
const (
	// waitHeld is how soon a drifted node held by the budget or the breaker is looked at again.
	waitHeld = 15 * time.Second
	// waitCensus is how soon a policy whose nodes have not all been looked at is asked again.
	waitCensus = 2 * time.Second
	// waitDrain is how soon a draining node is looked at again.
	waitDrain = 5 * time.Second
	// waitGone is how soon a node handed to its provisioner is looked at again.
	waitGone = 30 * time.Second
)

// Reconciler records the baseline of one node, compares the node with it, and cordons, drains
// or hands over a node changed in place, within the policies' budgets.
type Reconciler struct {
	client.Client
	// APIReader reads what must be current: the baselines a budget counts, the provisioner, the
	// whole pod of a bare pod to be recreated.
	APIReader client.Reader
	Tracker   *nodedrift.Tracker
	Census    *remediation.Census[string]
	Evictor   *remediation.Evictor
	Ledger    *remediation.Ledger
	// Pods says which pod policies apply to a pod: whether a drain may recreate a bare pod,
	// and, with Checks (admission's), whether the pods that must leave would be admitted again.
	Pods   *policy.Matcher
	Checks []admit.Check
	Events events.EventRecorder
	Clock  clock.PassiveClock
	// Namespace is the operator's own namespace, where bare pods' saved specs are kept.
	Namespace string
}

// scope is what one reconcile of a node knows.
type scope struct {
	node     *corev1.Node
	policies []fixityv1.NodeImmutabilityPolicy
	baseline *fixityv1.NodeBaseline
	status   *patch.Helper
	// findings are the differences found now, by policy.
	findings map[string][]fixityv1.NodeDriftFinding
	// by are the policies that found the node drifted; action is what they came to.
	by     []*fixityv1.NodeImmutabilityPolicy
	action fixityv1.NodeAction
	// before is the baseline's status when read, to tell each change once.
	before fixityv1.NodeBaselineStatus
}

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=fixity.dev,resources=nodeimmutabilitypolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=nodebaselines,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=fixity.dev,resources=nodebaselines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=karpenter.sh,resources=nodeclaims,verbs=get;list;delete
// +kubebuilder:rbac:groups=cluster.x-k8s.io,resources=machines,verbs=get;list;patch

// Reconcile looks at one node: is it as recorded, and if not, may it be taken out now?
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	s, err := r.newScope(ctx, req.Name)
	if s == nil || err != nil {
		return ctrl.Result{}, err
	}
	// A closure: commit replaces the helper with a fresh snapshot.
	defer func() { s.status.Finish(ctx, s.baseline, &retErr) }()
	return reconcile.Run(ctx, s,
		r.detect,     // compare the node with its baseline under every matching policy
		r.decide,     // the most cautious action; the breakers and the smallest budget
		r.admissible, // would the pods that must leave be admitted again elsewhere
		r.cordon,     // record the intent, then cordon and taint
		r.handOff,    // Replace: delete the NodeClaim or annotate the Machine
		r.drain,      // Drain, or Replace with no provisioner: evict what must leave
	).Result()
}

// newScope reads the node, its policies and its baseline, recording one if there is none yet
// (or only a stale one); nil means nothing to do.
func (r *Reconciler) newScope(ctx context.Context, name string) (*scope, error) {
	node := &corev1.Node{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			r.Tracker.Forget(name) // its baseline goes with it (owner reference)
		}
		return nil, client.IgnoreNotFound(err)
	}
	if !node.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	var list fixityv1.NodeImmutabilityPolicyList
	if err := r.List(ctx, &list); err != nil {
		return nil, err
	}
	s := &scope{node: node}
	for _, p := range list.Items {
		if p.DeletionTimestamp.IsZero() && nodedrift.Matches(&p, node) {
			s.policies = append(s.policies, p)
		}
	}
	slices.SortFunc(s.policies, func(a, b fixityv1.NodeImmutabilityPolicy) int { return strings.Compare(a.Name, b.Name) })
	if len(s.policies) == 0 {
		r.Tracker.Forget(name)
		return nil, nil
	}
	b, err := r.readBaseline(ctx, s)
	if b == nil || err != nil {
		// Nothing to compare yet (not Ready, being recorded again): counted as not drifted,
		// so that one node that never gets Ready does not hold its policies' census forever.
		r.Tracker.Set(name, evaluations(s.policies, nil))
		return nil, err
	}
	s.baseline, s.before = b, *b.Status.DeepCopy()
	s.status = patch.NewHelper(b, r.Client)
	return s, nil
}

// readBaseline returns the node's baseline, recording it when the node has none (or one that
// is stale) and is Ready; nil while it is not.
func (r *Reconciler) readBaseline(ctx context.Context, s *scope) (*fixityv1.NodeBaseline, error) {
	log := ctrl.LoggerFrom(ctx)
	b := &fixityv1.NodeBaseline{}
	err := r.Get(ctx, client.ObjectKey{Name: s.node.Name}, b)
	switch {
	case apierrors.IsNotFound(err):
		b = nil
	case err != nil:
		return nil, err
	case !b.DeletionTimestamp.IsZero():
		return nil, nil // going; recorded again once gone
	case b.Spec.FormatVersion > fixityv1.BaselineFormatVersion:
		// Written by a newer operator (a rollback): not ours to judge or to rewrite.
		log.V(1).Info("Baseline of a newer format; node not compared", "node", klog.KObj(s.node), "formatVersion", b.Spec.FormatVersion)
		return nil, nil
	}
	if b != nil {
		why := nodedrift.Stale(b, s.node)
		if why == "" || b.Spec.NodeUID == string(s.node.UID) && nodedrift.Disrupted(b) {
			// A node already being taken out goes on being replaced under its old record:
			// recording it again would accept what it drifted to.
			return b, nil
		}
		log.Info("Recording a node's baseline again", "node", klog.KObj(s.node), "reason", why)
		if err := r.Delete(ctx, b, client.Preconditions{UID: &b.UID}); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("removing the stale baseline of node %s: %w", s.node.Name, err)
		}
		return nil, nil // the deletion brings the node back here
	}
	if !nodedrift.Ready(s.node) {
		return nil, nil // recorded once it is Ready: its Ready transition brings it back
	}
	b = nodedrift.Record(s.node, s.policies, metav1.NewTime(r.Clock.Now()))
	if err := r.Create(ctx, b); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil // another writer was first; the cache brings it
		}
		return nil, fmt.Errorf("recording the baseline of node %s: %w", s.node.Name, err)
	}
	r.Events.Eventf(s.node, b, corev1.EventTypeNormal, fixityv1.EventBaselineRecorded, "Record",
		"Baseline recorded: kernel %s, OS %s, kubelet %s, runtime %s", b.Spec.NodeInfo.KernelVersion, b.Spec.NodeInfo.OSImage,
		b.Spec.NodeInfo.KubeletVersion, b.Spec.NodeInfo.ContainerRuntimeVersion)
	log.Info("Recorded a node's baseline", "node", klog.KObj(s.node))
	return b, nil
}

// lift removes Fixity's cordon from a node whose baseline does not say it is being taken out
// (a person deleted the old one to accept the node as it is, and it was recorded afresh). The
// baseline is read from the API server first: a cache that has the cordon but not yet the record
// written before it must not undo it. Only a node carrying Fixity's taint is touched: a cordon
// someone else made stays.
func (r *Reconciler) lift(ctx context.Context, node *corev1.Node, cached *fixityv1.NodeBaseline) error {
	if nodedrift.Disrupted(cached) || !slices.ContainsFunc(node.Spec.Taints, isDriftedTaint) {
		return nil
	}
	b := &fixityv1.NodeBaseline{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), b); err != nil {
		return client.IgnoreNotFound(err)
	}
	if b.UID != cached.UID || nodedrift.Disrupted(b) {
		return nil
	}
	before := node.DeepCopy()
	node.Spec.Taints = slices.DeleteFunc(node.Spec.Taints, isDriftedTaint)
	node.Spec.Unschedulable = false
	if err := r.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("lifting Fixity's cordon from node %s: %w", node.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Lifted Fixity's cordon: the node's new baseline accepts it as it is", "node", klog.KObj(node))
	return nil
}

func isDriftedTaint(t corev1.Taint) bool { return t.Key == fixityv1.DriftedTaint }

// detect compares the node with its baseline under each policy and tells what changed, once.
func (r *Reconciler) detect(ctx context.Context, s *scope) reconcile.Outcome {
	now := metav1.NewTime(r.Clock.Now())
	s.findings = map[string][]fixityv1.NodeDriftFinding{}
	var sets [][]fixityv1.NodeDriftFinding
	for i := range s.policies {
		p := &s.policies[i]
		fs := nodedrift.Compare(s.baseline, s.node, p)
		s.findings[p.Name] = fs
		sets = append(sets, fs)
		if len(fs) > 0 {
			s.by = append(s.by, p)
		}
	}
	r.Tracker.Set(s.node.Name, evaluations(s.policies, s.findings))
	if err := r.lift(ctx, s.node, s.baseline); err != nil {
		return reconcile.Fail(err)
	}
	st := &s.baseline.Status
	merged := nodedrift.Merge(st.Drifted, now, sets...)
	// Told once per change, from memory: a stale cached status must not tell it twice.
	if r.Tracker.Report(s.node.Name, merged) && len(merged) > 0 {
		for _, p := range s.by {
			msg := nodedrift.Describe(s.findings[p.Name])
			for _, f := range s.findings[p.Name] {
				metrics.NodeDriftDetected.WithLabelValues(p.Name, string(f.Check)).Inc()
			}
			r.Events.Eventf(s.node, p, corev1.EventTypeWarning, fixityv1.EventNodeDrifted, "Detect", "[policy %s] Node changed in place: %s", p.Name, msg)
			r.Events.Eventf(p, s.node, corev1.EventTypeWarning, fixityv1.EventNodeDrifted, "Detect", "Node %s changed in place: %s", s.node.Name, msg)
		}
		ctrl.LoggerFrom(ctx).Info("Node drift detected", "node", klog.KObj(s.node), "policies", nodedrift.Names(s.by), "findings", nodedrift.Describe(merged))
	}
	st.Drifted = merged
	if nodedrift.Disrupted(s.baseline) {
		return reconcile.Next() // once cordoned, a node is replaced even if it changed back
	}
	if len(merged) == 0 {
		st.Phase, st.Message = fixityv1.NodeClean, ""
		return reconcile.Stop()
	}
	st.Phase = fixityv1.NodeDrifted
	return reconcile.Next()
}

// evaluations are the policies' verdicts on a node from its findings (none: not drifted).
func evaluations(policies []fixityv1.NodeImmutabilityPolicy, findings map[string][]fixityv1.NodeDriftFinding) []nodedrift.Evaluation {
	out := make([]nodedrift.Evaluation, len(policies))
	for i := range policies {
		p := &policies[i]
		out[i] = nodedrift.Evaluation{Policy: p.Name, Generation: p.Generation, Drifted: len(findings[p.Name]) > 0}
	}
	return out
}

// decide picks the most cautious action and, for a node not yet cordoned, asks the policies'
// circuit breakers and budgets.
func (r *Reconciler) decide(ctx context.Context, s *scope) reconcile.Outcome {
	st := &s.baseline.Status
	if nodedrift.Disrupted(s.baseline) {
		s.action = r.actionOf(s)
		if s.action == fixityv1.NodeReport {
			// A policy switched to Audit or Report mid-way is the brake: the cordon stays (a
			// person lifts it by deleting the baseline), nothing more is evicted or handed over.
			st.Message = "Kept cordoned; nothing more is done while a policy of the node only reports (mode Audit or action Report)"
			return reconcile.Stop()
		}
		return reconcile.Next()
	}
	s.action = nodedrift.Action(s.by)
	if s.action == fixityv1.NodeReport {
		st.Message = "Drifted; reported only (mode Audit or action Report of policy " + reportingPolicy(s.by) + ")"
		return reconcile.Stop()
	}
	for i := range s.policies {
		p := &s.policies[i]
		trusted, err := r.Census.Trusted(p.Name, p.Generation,
			func() ([]string, error) { return matchedNodes(ctx, r.Client, p) },
			func(node string) bool { return r.Tracker.EvaluatedUnder(node, p.Name, p.Generation) })
		if err != nil {
			return reconcile.Fail(err)
		}
		if !trusted {
			return reconcile.Wait(waitCensus, "", "not every node of policy "+p.Name+" has been looked at yet")
		}
		matched, drifted := r.Tracker.Counts(p.Name)
		if ok, msg := nodedrift.Breaker(p, matched, drifted); !ok {
			return r.hold(ctx, s, fixityv1.TooManyDriftedReason, "[policy "+p.Name+"] "+msg)
		}
	}
	// The budget is counted from the API server, not the cache: a node cordoned a moment ago
	// (by this replica or a leader before it) counts at once. Only the marked baselines are
	// sent.
	var all fixityv1.NodeBaselineList
	if err := r.APIReader.List(ctx, &all, client.MatchingLabels{fixityv1.DisruptedLabel: "true"}); err != nil {
		return reconcile.Fail(fmt.Errorf("counting the nodes Fixity has cordoned: %w", err))
	}
	for i := range s.policies {
		p := &s.policies[i]
		matched, _ := r.Tracker.Counts(p.Name)
		budget, err := nodedrift.Budget(p, matched)
		if err != nil {
			return reconcile.Fail(err)
		}
		var out []string
		for _, b := range all.Items {
			if b.Name != s.node.Name && (slices.Contains(nodedrift.DisruptedUnder(&b), p.Name) || r.matchesNode(ctx, p, b.Name)) {
				out = append(out, b.Name)
			}
		}
		if len(out) >= budget {
			return r.hold(ctx, s, fixityv1.BudgetExhaustedReason, fmt.Sprintf(
				"[policy %s] %d of %d nodes already cordoned and not gone (maxUnavailable %s): %s", p.Name, len(out), budget,
				p.Spec.MaxUnavailable.String(), strings.Join(out[:min(len(out), 3)], ", ")))
		}
		if o := r.poolWhole(ctx, s, p, len(out)); o.Kind != reconcile.Continue {
			return o
		}
	}
	return reconcile.Next()
}

// poolWhole holds the next node while p's pool has fewer nodes (healthy, plus out and not gone)
// than before Fixity first took one out: a node replaced is only followed by another once its
// replacement has joined.
func (r *Reconciler) poolWhole(ctx context.Context, s *scope, p *fixityv1.NodeImmutabilityPolicy, out int) reconcile.Outcome {
	rec, err := nodedrift.ReadPool(ctx, r.APIReader, r.Namespace, p)
	if err != nil || rec == nil {
		return reconcile.Fail(err)
	}
	healthy, err := r.healthyNodes(ctx, p)
	if err != nil {
		return reconcile.Fail(err)
	}
	expired := r.Clock.Since(rec.At) > nodedrift.PoolExpiry
	if healthy+out >= rec.Healthy || expired {
		if out == 0 || expired {
			return reconcile.Fail(rec.Forget(ctx, r.Client))
		}
		return reconcile.Next()
	}
	return r.hold(ctx, s, fixityv1.ReplacementPendingReason, fmt.Sprintf(
		"[policy %s] %d healthy nodes and %d out, of the %d before the last replacement: the next node waits for the replacement to join "+
			"(to accept a smaller pool, delete ConfigMap %s/%s)", p.Name, healthy, out, rec.Healthy, r.Namespace, nodedrift.PoolName(p)))
}

// healthyNodes counts the nodes p matches that take pods, from the cache.
func (r *Reconciler) healthyNodes(ctx context.Context, p *fixityv1.NodeImmutabilityPolicy) (int, error) {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return 0, err
	}
	n := 0
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp.IsZero() && nodedrift.Matches(p, &nodes.Items[i]) && nodedrift.Healthy(&nodes.Items[i]) {
			n++
		}
	}
	return n, nil
}

// actionOf is the action a cordoned node is under: the one recorded when it was cordoned,
// taken again from the policies it was cordoned under that still exist.
func (r *Reconciler) actionOf(s *scope) fixityv1.NodeAction {
	var under []*fixityv1.NodeImmutabilityPolicy
	for i := range s.policies {
		if slices.Contains(nodedrift.DisruptedUnder(s.baseline), s.policies[i].Name) {
			under = append(under, &s.policies[i])
		}
	}
	if len(under) == 0 {
		// The policies it was taken out under are gone: the ones that match it now decide.
		for i := range s.policies {
			under = append(under, &s.policies[i])
		}
	}
	return nodedrift.Action(under)
}

func reportingPolicy(by []*fixityv1.NodeImmutabilityPolicy) string {
	for _, p := range by {
		if nodedrift.ActionOf(p) == fixityv1.NodeReport {
			return p.Name
		}
	}
	return ""
}

// hold keeps a drifted node as it is for now, and tells why once per change.
func (r *Reconciler) hold(ctx context.Context, s *scope, reason, msg string) reconcile.Outcome {
	s.baseline.Status.Message = reason + ": " + msg
	if s.before.Message != s.baseline.Status.Message {
		r.Events.Eventf(s.node, s.by[0], corev1.EventTypeWarning, fixityv1.EventNodeHeld, "Replace", "Drifted node kept for now: %s: %s", reason, msg)
		for _, p := range s.by {
			r.Events.Eventf(p, s.node, corev1.EventTypeWarning, fixityv1.EventNodeHeld, "Replace", "Drifted node %s kept for now: %s: %s", s.node.Name, reason, msg)
		}
		ctrl.LoggerFrom(ctx).Info("Drifted node kept for now", "node", klog.KObj(s.node), "reason", reason, "message", msg)
	}
	return reconcile.Wait(waitHeld, reason, msg)
}

// admissible keeps a node that is not out yet when a pod that would have to leave it could not
// come back: the pod its owner would create in its place (or a bare pod's admitted spec) is
// denied by admission now. Draining it would take that workload down; the node is held and the
// message says what to fix, as for a drifted pod.
func (r *Reconciler) admissible(ctx context.Context, s *scope) reconcile.Outcome {
	if nodedrift.Disrupted(s.baseline) || s.action == fixityv1.NodeCordon || r.Pods == nil {
		return reconcile.Next()
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.MatchingFields{NodeNameIndex: s.node.Name}); err != nil {
		return reconcile.Fail(err)
	}
	var held, undecided []string
	for i := range pods.Items {
		pod := &pods.Items[i]
		if nodedrift.Stays(pod) != "" || !pod.DeletionTimestamp.IsZero() || r.Pods.Excluded(pod.Namespace) {
			continue
		}
		var owner *remediation.Owner
		if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
			o, err := remediation.ReadOwner(ctx, r.APIReader, pod.Namespace, ref)
			if err != nil {
				return reconcile.Fail(err)
			}
			if o == nil {
				continue // its owner is gone: the garbage collector takes it
			}
			owner = o
		}
		repl, err := drift.Replacement(pod, owner)
		if err != nil {
			continue // a bare pod without an admitted spec: the drain reports it blocked
		}
		denied, why := drift.DryRun(ctx, r.Pods, r.Checks, repl)
		switch {
		case len(denied) > 0:
			held = append(held, fmt.Sprintf("pod %s/%s would not come back: %s. %s", pod.Namespace, pod.Name,
				strings.Join(denied, "; "), drift.FixFor(owner)))
		case why != "":
			undecided = append(undecided, fmt.Sprintf("pod %s/%s: %s", pod.Namespace, pod.Name, why))
		}
	}
	if len(held) > 0 {
		slices.Sort(held)
		return r.hold(ctx, s, fixityv1.ReplacementWouldBeDeniedReason, strings.Join(held[:min(len(held), 3)], " | "))
	}
	if len(undecided) > 0 {
		return reconcile.Wait(waitHeld, "", "whether the node's pods would be admitted again cannot be decided yet: "+strings.Join(undecided, "; "))
	}
	return reconcile.Next()
}

// cordon records that Fixity is taking the node out (so that the budget counts it from now on,
// across restarts and leader changes), then cordons and taints it.
func (r *Reconciler) cordon(ctx context.Context, s *scope) reconcile.Outcome {
	st := &s.baseline.Status
	if !nodedrift.Disrupted(s.baseline) {
		// The record the budgets count, written first, with the resourceVersion read: of two
		// writers working from the same copy, one fails here and decides again.
		names := make([]string, 0, len(s.policies))
		for i := range s.policies {
			names = append(names, s.policies[i].Name)
		}
		if s.action != fixityv1.NodeCordon {
			// The pool's size before a node leaves it, for poolWhole; written first, so that a
			// crash after it holds the next node rather than letting it go.
			for i := range s.policies {
				healthy, err := r.healthyNodes(ctx, &s.policies[i])
				if err == nil {
					err = nodedrift.RecordPool(ctx, r.Client, r.APIReader, r.Namespace, &s.policies[i], healthy, r.Clock.Now())
				}
				if err != nil {
					return reconcile.Fail(err)
				}
			}
		}
		before, found := s.baseline.DeepCopy(), *st.DeepCopy()
		nodedrift.MarkDisrupted(s.baseline, names)
		err := r.Patch(ctx, s.baseline, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		// The response carries the stored status; this reconcile's findings are kept (or, on
		// failure, dropped for the deferred patch, and decided again).
		s.baseline.Status = found
		if err != nil {
			s.baseline.Labels, s.baseline.Annotations = before.Labels, before.Annotations
			s.baseline.Status = *s.before.DeepCopy()
			return reconcile.Fail(fmt.Errorf("recording that node %s is taken out: %w", s.node.Name, err))
		}
	}
	if !st.Phase.Disrupted() {
		st.Phase = fixityv1.NodeCordoned
		if s.action != fixityv1.NodeCordon {
			st.Phase = fixityv1.NodeDraining
		}
		st.Policies = nodedrift.DisruptedUnder(s.baseline)
		now := metav1.NewTime(r.Clock.Now())
		// Reported by the deferred patch: the label above is the record.
		st.DisruptedAt, st.Message = &now, "Cordoned: "+nodedrift.Describe(st.Drifted)
	}
	if err := r.cordonNode(ctx, s); err != nil {
		return reconcile.Fail(err)
	}
	if s.action == fixityv1.NodeCordon {
		st.Phase = fixityv1.NodeCordoned
		return reconcile.Stop()
	}
	return reconcile.Next()
}

// commit writes the baseline's status now, with optimistic locking, and takes it as the new
// snapshot. Of two writers working from the same copy (a stale cache, a leader change), one
// fails here.
func (s *scope) commit(ctx context.Context, c client.Client) error {
	b := s.baseline
	b.Status.ObservedGeneration = b.Generation // what the deferred patch would write after
	before := b.DeepCopy()
	before.Status = s.before
	if err := c.Status().Patch(ctx, b, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		// Nothing of this reconcile is kept (the deferred patch would write it without the
		// lock): it is decided again from a fresh copy.
		b.Status = *s.before.DeepCopy()
		return fmt.Errorf("recording the state of node %s: %w", b.Name, err)
	}
	s.status, s.before = patch.NewHelper(b, c), *b.Status.DeepCopy()
	return nil
}

// cordonNode marks the node unschedulable and taints it fixity.dev/drifted:NoSchedule, once.
func (r *Reconciler) cordonNode(ctx context.Context, s *scope) error {
	node := s.node
	if node.Spec.Unschedulable && slices.ContainsFunc(node.Spec.Taints, isDriftedTaint) {
		return nil
	}
	before := node.DeepCopy()
	node.Spec.Unschedulable = true
	if !slices.ContainsFunc(node.Spec.Taints, isDriftedTaint) {
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: fixityv1.DriftedTaint, Effect: corev1.TaintEffectNoSchedule})
	}
	if err := r.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("cordoning node %s: %w", node.Name, err)
	}
	msg := nodedrift.Describe(s.baseline.Status.Drifted)
	r.Events.Eventf(node, s.by0(), corev1.EventTypeWarning, fixityv1.EventNodeCordoned, "Cordon", "Cordoned and tainted %s: %s", fixityv1.DriftedTaint, msg)
	for i := range s.policies {
		if slices.Contains(nodedrift.DisruptedUnder(s.baseline), s.policies[i].Name) {
			r.Events.Eventf(&s.policies[i], node, corev1.EventTypeWarning, fixityv1.EventNodeCordoned, "Cordon", "Node %s cordoned: %s", node.Name, msg)
		}
	}
	ctrl.LoggerFrom(ctx).Info("Cordoned a drifted node", "node", klog.KObj(node), "action", s.action, "findings", msg)
	return nil
}

// by0 is a policy to relate Events to: the first that found the node drifted, else the first
// that matches it.
func (s *scope) by0() *fixityv1.NodeImmutabilityPolicy {
	if len(s.by) > 0 {
		return s.by[0]
	}
	return &s.policies[0]
}

// handOff asks the node's provisioner to replace it: Karpenter's NodeClaim is deleted (Karpenter
// drains and removes the node and brings a new one), Cluster API's Machine is annotated for
// remediation. With neither, the node is drained here and left cordoned (NoProvisioner).
func (r *Reconciler) handOff(ctx context.Context, s *scope) reconcile.Outcome {
	if s.action != fixityv1.NodeReplace {
		return reconcile.Next()
	}
	st := &s.baseline.Status
	prov, err := nodedrift.FindProvisioner(ctx, r.APIReader, s.node)
	if err != nil {
		return reconcile.Fail(err)
	}
	if prov == nil {
		if st.Phase == fixityv1.NodeReplacing {
			// Its provisioner's object went, but the node stays: a person must look.
			st.Phase, st.Message = fixityv1.NodeDrainStuck, "The node's provisioner object is gone but the node is still here; replace the machine by hand"
			return reconcile.Wait(waitGone, fixityv1.DrainStuckReason, st.Message)
		}
		return reconcile.Next() // drained here, then reported NoProvisioner
	}
	if ok, why := nodedrift.HandedOver(prov); !ok {
		if why != "" {
			st.Message = why
			return reconcile.Wait(waitGone, "", why)
		}
		if err := nodedrift.HandOver(ctx, r.Client, prov); err != nil {
			return reconcile.Fail(fmt.Errorf("asking %s to replace node %s: %w", prov, s.node.Name, err))
		}
		method := metrics.MethodNodeClaim
		if prov.Kind == nodedrift.MachineKind {
			method = metrics.MethodMachine
		}
		for _, name := range st.Policies {
			r.Ledger.NodeReplaced(ctx, name, method)
		}
		r.Events.Eventf(s.node, s.by0(), corev1.EventTypeNormal, fixityv1.EventNodeReplacing, "Replace", "Asked %s to replace the node: %s", prov, nodedrift.Describe(st.Drifted))
		r.Events.Eventf(s.by0(), s.node, corev1.EventTypeNormal, fixityv1.EventNodeReplacing, "Replace", "Asked %s to replace node %s", prov, s.node.Name)
		ctrl.LoggerFrom(ctx).Info("Handed a drifted node to its provisioner", "node", klog.KObj(s.node), "provisioner", prov.String())
	}
	st.Phase, st.Message = fixityv1.NodeReplacing, "Handed to "+prov.String()+", which drains and removes the node"
	if r.overdue(s) {
		st.Phase = fixityv1.NodeDrainStuck
		st.Message = fmt.Sprintf("%s has not removed the node within drainTimeout %s; it stays cordoned", prov, nodedrift.DrainTimeout(s.under()))
		r.tellStuck(ctx, s)
	}
	return reconcile.Wait(waitGone, "", st.Message)
}

// under are the matching policies the node was cordoned under.
func (s *scope) under() []*fixityv1.NodeImmutabilityPolicy {
	var out []*fixityv1.NodeImmutabilityPolicy
	for i := range s.policies {
		if slices.Contains(nodedrift.DisruptedUnder(s.baseline), s.policies[i].Name) {
			out = append(out, &s.policies[i])
		}
	}
	return out
}

// overdue reports whether the node has been out longer than the shortest drainTimeout.
func (r *Reconciler) overdue(s *scope) bool {
	at := s.baseline.Status.DisruptedAt
	return at != nil && r.Clock.Since(at.Time) > nodedrift.DrainTimeout(s.under())
}

func (r *Reconciler) tellStuck(ctx context.Context, s *scope) {
	if s.before.Phase == fixityv1.NodeDrainStuck {
		return
	}
	msg := s.baseline.Status.Message
	r.Events.Eventf(s.node, s.by0(), corev1.EventTypeWarning, fixityv1.EventDrainStuck, "Drain", "%s", msg)
	r.Events.Eventf(s.by0(), s.node, corev1.EventTypeWarning, fixityv1.EventDrainStuck, "Drain", "Node %s: %s", s.node.Name, msg)
	ctrl.LoggerFrom(ctx).Info("Drain stuck", "node", klog.KObj(s.node), "message", msg)
}

// drain evicts every pod that must leave the node, through the Eviction API; bare pods that
// Fixity recreates are saved and recreated elsewhere, other bare pods block the drain.
func (r *Reconciler) drain(ctx context.Context, s *scope) reconcile.Outcome {
	st := &s.baseline.Status
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.MatchingFields{NodeNameIndex: s.node.Name}); err != nil {
		return reconcile.Fail(err)
	}
	plan := nodedrift.PlanDrain(pods.Items, func(pod *corev1.Pod) bool { return r.recreates(ctx, pod) })
	if plan.Leaving == 0 {
		return r.drained(ctx, s)
	}
	blocked, retry := plan.Blocked, waitDrain
	for _, pod := range plan.Evict {
		ev, err := r.Evictor.Evict(ctx, pod)
		if err != nil {
			// This pod's eviction failed (several budgets cover it, a webhook denied it):
			// reported with the others, never a reason to stop trying the rest.
			blocked = append(blocked, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err))
			continue
		}
		if ev.Result == remediation.Refused {
			blocked = append(blocked, fmt.Sprintf("pod %s/%s: %s", pod.Namespace, pod.Name, ev.Reason))
			retry = min(retry, ev.RetryAfter)
		}
	}
	for _, pod := range plan.Recreate {
		if err := r.saveForRecreation(ctx, pod); err != nil {
			blocked = append(blocked, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err))
		}
	}
	st.Phase, st.Message = fixityv1.NodeDraining, fmt.Sprintf("Draining: %d pods to leave", plan.Leaving)
	if len(blocked) > 0 {
		slices.Sort(blocked)
		what := "blocked: " + strings.Join(blocked[:min(len(blocked), 5)], "; ")
		st.Message += "; " + what
		if !strings.Contains(s.before.Message, what) { // told once per change, stuck or not
			r.Events.Eventf(s.node, s.by0(), corev1.EventTypeWarning, fixityv1.EventDrainBlocked, "Drain", "%s", st.Message)
		}
	}
	if r.overdue(s) {
		st.Phase = fixityv1.NodeDrainStuck
		st.Message = fmt.Sprintf("Drain did not finish within drainTimeout %s; the node stays cordoned and nothing is forced. %s",
			nodedrift.DrainTimeout(s.under()), st.Message)
		r.tellStuck(ctx, s)
	}
	return reconcile.Wait(retry, "", st.Message)
}

// drained ends a drain: the node stays cordoned, reported NoProvisioner when it was to be
// replaced.
func (r *Reconciler) drained(ctx context.Context, s *scope) reconcile.Outcome {
	st := &s.baseline.Status
	st.Phase, st.Message = fixityv1.NodeCordoned, "Drained; the node stays cordoned"
	event, reason := fixityv1.EventNodeDrained, "Drained: every pod that had to leave is gone; the node stays cordoned"
	if s.action == fixityv1.NodeReplace {
		st.Message = fixityv1.NoProvisionerReason + ": drained and left cordoned; no Karpenter NodeClaim or Cluster API Machine provisions it: replace the machine"
		event, reason = fixityv1.EventNoProvisioner, st.Message
	}
	if st.DrainedAt == nil {
		// Written now, with the resourceVersion read, so that a stale copy of the baseline
		// never counts or tells the same drain twice; a pod that lands on the node later is
		// drained again without being counted again.
		now := metav1.NewTime(r.Clock.Now())
		st.DrainedAt = &now
		if err := s.commit(ctx, r.Client); err != nil {
			return reconcile.Fail(err)
		}
		if s.action == fixityv1.NodeReplace {
			for _, name := range st.Policies {
				r.Ledger.NodeReplaced(ctx, name, metrics.MethodDrained)
			}
		}
		r.Events.Eventf(s.node, s.by0(), corev1.EventTypeWarning, event, "Drain", "%s", reason)
		r.Events.Eventf(s.by0(), s.node, corev1.EventTypeWarning, event, "Drain", "Node %s: %s", s.node.Name, reason)
		ctrl.LoggerFrom(ctx).Info("Drained a drifted node", "node", klog.KObj(s.node), "message", st.Message)
	}
	return reconcile.Stop()
}

// recreates reports whether Fixity recreates this bare pod elsewhere: it was admitted by Fixity
// (so its admitted spec is known) and a pod policy that replaces drifted pods matches it.
func (r *Reconciler) recreates(ctx context.Context, pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[fixityv1.VerifiedAnnotation]; !ok || r.Pods == nil || r.Pods.Excluded(pod.Namespace) {
		return false
	}
	policies, err := r.Pods.ForPod(ctx, pod.Namespace, pod.Labels)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(policies, func(p fixityv1.ImmutabilityPolicy) bool { return drift.Replaces(&p) })
}

// saveForRecreation saves a bare pod's admitted spec for the recreate controller, which deletes
// it and creates it again (elsewhere: the node is cordoned).
func (r *Reconciler) saveForRecreation(ctx context.Context, pod *corev1.Pod) error {
	policies, err := r.Pods.ForPod(ctx, pod.Namespace, pod.Labels)
	if err != nil {
		return err
	}
	var names []string
	for _, p := range policies {
		if drift.Replaces(&p) {
			names = append(names, p.Name)
		}
	}
	return drift.SaveForRecreation(ctx, r.APIReader, r.Client, r.Namespace, pod, names, "draining its node")
}

// matchesNode reports whether p matches the node called name now (a node taken out under other
// policies still counts against this one's budget).
func (r *Reconciler) matchesNode(ctx context.Context, p *fixityv1.NodeImmutabilityPolicy, name string) bool {
	n := &corev1.Node{}
	return r.Get(ctx, client.ObjectKey{Name: name}, n) == nil && nodedrift.Matches(p, n)
}

// matchedNodes lists the nodes p matches, from the cache.
func matchedNodes(ctx context.Context, c client.Reader, p *fixityv1.NodeImmutabilityPolicy) ([]string, error) {
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return nil, err
	}
	var out []string
	for i := range nodes.Items {
		if nodes.Items[i].DeletionTimestamp.IsZero() && nodedrift.Matches(p, &nodes.Items[i]) {
			out = append(out, nodes.Items[i].Name)
		}
	}
	return out, nil
}

// nodeOf is the request for a node by name.
func nodeOf(name string) ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Name: name}}
}
