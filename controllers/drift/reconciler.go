package drift

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/reconcile"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Requeue intervals. None of them is a sleep: the pod is looked at again when they pass or when
// it (or its policy, owner, namespace or grant) changes, whichever is first.
const (
	// waitUndecided is how soon a pod whose drift could not be decided is looked at again.
	waitUndecided = 30 * time.Second
	// waitBreaker is how soon a pod held by an open circuit breaker is looked at again.
	waitBreaker = 15 * time.Second
	// waitCensus is how soon a policy whose pods have not all been looked at is asked again.
	waitCensus = 2 * time.Second
	// waitDenied is how soon a pod kept because its replacement would be denied is judged
	// again, besides when its owner or policy changes (a signature pushed for the same digest
	// changes no object).
	waitDenied = time.Minute
)

// Reconciler detects and remediates drift of one pod.
type Reconciler struct {
	client.Client
	// APIReader reads what must be current: owners, whole pods, the ledger.
	APIReader client.Reader
	Matcher   *policy.Matcher
	Detector  *drift.Detector
	Tracker   *drift.Tracker
	// Checks are admission's checks: the replacement of a drifted pod is run through them.
	Checks   []admit.Check
	Versions *admitted.Versions
	Evictor  *remediation.Evictor
	Gate     *remediation.Gate
	Census   *remediation.Census[types.NamespacedName]
	Ledger   *remediation.Ledger
	Events   events.EventRecorder
	// Namespace is the operator's own namespace, where bare pods' saved specs are kept.
	Namespace string
	// ConfigCache holds the cluster's ConfigMaps and Secrets (podconfig.NewCache): a change of
	// one's data looks again at the pods that recorded it. Nil watches none.
	ConfigCache cache.Cache
	// StatsChanged names the pods whose writable-layer figures changed (kubeletstats.Poller).
	StatsChanged <-chan event.GenericEvent
}

// scope is what one reconcile of a pod knows, filled in phase by phase.
type scope struct {
	pod      *corev1.Pod
	policies []fixityv1.ImmutabilityPolicy
	state    drift.PodState
	// changed says the findings differ from the last look (report them once).
	changed   bool
	undecided error
	// by are the policies that found the pod drifted and replace it.
	by []*fixityv1.ImmutabilityPolicy
	// owner is the pod's controller (nil: a bare pod), ownerPods its pods in the cache.
	owner     *remediation.Owner
	ownerPods []corev1.Pod
}

func (s *scope) key() types.NamespacedName { return client.ObjectKeyFromObject(s.pod) }

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes/stats,verbs=get
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps,resources=replicasets;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=accessgrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=immutabilitypolicies/status,verbs=get;update;patch

// Reconcile looks at one pod: is it drifted, and may it be replaced now without hurting its
// workload?
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s, err := r.newScope(ctx, req.NamespacedName)
	if s == nil || err != nil {
		return ctrl.Result{}, err
	}
	return reconcile.Run(ctx, s,
		r.detect,     // run the policies' drift checks; stamp outdated records again
		r.report,     // tell the pod's and policies' watchers what was found, once
		r.decide,     // which policies replace it, and do their circuit breakers allow it
		r.admissible, // would its replacement be admitted now
		r.gate,       // one pod of an owner at a time, and only once it has recovered
		r.replace,    // evict it, or save a bare pod's spec for the recreate controller
	).Result()
}

// newScope reads the pod and the policies that match it; nil means nothing to do.
func (r *Reconciler) newScope(ctx context.Context, key types.NamespacedName) (*scope, error) {
	pod := &corev1.Pod{}
	if err := r.Get(ctx, key, pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.Tracker.Forget(key)
		}
		return nil, client.IgnoreNotFound(err)
	}
	if !pod.DeletionTimestamp.IsZero() || r.Matcher.Excluded(pod.Namespace) {
		return nil, nil
	}
	policies, err := r.Matcher.ForPod(ctx, pod.Namespace, pod.Labels)
	if err != nil {
		return nil, err
	}
	if len(policies) == 0 {
		r.Tracker.Forget(key)
		return nil, nil
	}
	return &scope{pod: pod, policies: policies}, nil
}

// detect runs every matching policy's drift checks.
func (r *Reconciler) detect(ctx context.Context, s *scope) reconcile.Outcome {
	if err := r.restamp(ctx, s.pod); err != nil {
		return reconcile.Fail(err)
	}
	s.state = drift.PodState{Findings: map[string][]drift.Finding{}, Generations: map[string]int64{}}
	for i := range s.policies {
		p := &s.policies[i]
		fs, err := r.Detector.Detect(ctx, s.pod, p)
		if u := (*drift.UndecidedError)(nil); err != nil && !errors.As(err, &u) {
			return reconcile.Fail(err)
		}
		s.undecided = errors.Join(s.undecided, err)
		s.state.Findings[p.Name], s.state.Generations[p.Name] = fs, p.Generation
	}
	s.changed = r.Tracker.Set(s.key(), s.state)
	return reconcile.Next()
}

// restamp writes the records of a pod admitted under another records or Kubernetes version
// again from its current spec: such a hash says nothing about drift.
func (r *Reconciler) restamp(ctx context.Context, pod *corev1.Pod) error {
	if _, ok := pod.Annotations[fixityv1.SpecHashAnnotation]; !ok {
		return nil // not admitted by Fixity: judged by Unverified
	}
	if r.foundChanged(client.ObjectKeyFromObject(pod)) {
		return nil // found changed in place before: a new stamp must not wipe that out
	}
	current, err := r.Versions.Current(ctx, false)
	if err != nil || admitted.StampOf(pod) == current {
		return err
	}
	before := pod.DeepCopy()
	if changed, err := admitted.Restamp(pod, current); err != nil || !changed {
		return err
	}
	if err := r.Patch(ctx, pod, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("stamping the records of pod %s/%s again: %w", pod.Namespace, pod.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Stamped the records of a pod admitted under another version", "pod", klog.KObj(pod),
		"was", before.Annotations[fixityv1.RecordVersionAnnotation], "now", current.String())
	return nil
}

// foundChanged reports whether the pod was found drifted by SpecChange when last looked at.
func (r *Reconciler) foundChanged(key types.NamespacedName) bool {
	st, ok := r.Tracker.Get(key)
	if !ok {
		return false
	}
	for _, fs := range st.Findings {
		if slices.ContainsFunc(fs, func(f drift.Finding) bool { return f.Check == fixityv1.CheckSpecChange }) {
			return true
		}
	}
	return false
}

// report tells what was found, once per change, and stops here for a pod that is not drifted.
func (r *Reconciler) report(ctx context.Context, s *scope) reconcile.Outcome {
	log := ctrl.LoggerFrom(ctx)
	if s.changed {
		for i := range s.policies {
			p := &s.policies[i]
			fs := s.state.Findings[p.Name]
			if len(fs) == 0 {
				continue
			}
			var lines []string
			for _, f := range fs {
				metrics.DriftDetected.WithLabelValues(p.Name, string(f.Check)).Inc()
				lines = append(lines, f.String())
			}
			msg := strings.Join(lines, "; ")
			r.Events.Eventf(s.pod, p, corev1.EventTypeWarning, fixityv1.EventDriftDetected, "Detect", "[policy %s] %s", p.Name, msg)
			r.Events.Eventf(p, s.pod, corev1.EventTypeWarning, fixityv1.EventDriftDetected, "Detect", "Pod %s/%s: %s", s.pod.Namespace, s.pod.Name, msg)
			log.Info("Drift detected", "pod", klog.KObj(s.pod), "policy", p.Name, "findings", msg)
		}
	}
	if s.state.Drifted() {
		return reconcile.Next()
	}
	if s.undecided != nil {
		if s.changed { // degraded states are logged once per change, not on every look
			log.Info("Drift cannot be decided yet", "pod", klog.KObj(s.pod), "reason", s.undecided.Error())
		}
		return reconcile.Wait(waitUndecided, "", s.undecided.Error())
	}
	return reconcile.Stop()
}

// decide picks the policies that replace the pod and asks their circuit breakers.
func (r *Reconciler) decide(ctx context.Context, s *scope) reconcile.Outcome {
	ref := metav1.GetControllerOfNoCopy(s.pod)
	job := ref != nil && ref.Kind == "Job" && strings.HasPrefix(ref.APIVersion, "batch/")
	for i := range s.policies {
		p := &s.policies[i]
		if drift.Replaceable(s.state.Findings[p.Name]) && drift.Replaces(p) && (!job || p.Spec.Drift.JobPods == fixityv1.DriftReplace) {
			s.by = append(s.by, p)
		}
	}
	if len(s.by) == 0 {
		if job && s.changed {
			r.Events.Eventf(s.pod, nil, corev1.EventTypeWarning, fixityv1.EventReplacementSkipped, "Replace",
				"Drifted pod of Job %s is reported, not replaced (drift.jobPods: Report)", ref.Name)
		}
		return reconcile.Stop() // Report or Audit: reported above
	}
	for _, p := range s.by {
		trusted, err := r.Census.Trusted(p.Name, p.Generation,
			func() ([]types.NamespacedName, error) { return matchedPods(ctx, r.Client, r.Matcher, p) },
			func(key types.NamespacedName) bool {
				st, seen := r.Tracker.Get(key)
				return seen && st.EvaluatedUnder(p.Name, p.Generation)
			})
		if err != nil {
			return reconcile.Fail(err)
		}
		if !trusted {
			return reconcile.Wait(waitCensus, "", "not every pod of policy "+p.Name+" has been looked at yet")
		}
		if ok, msg := drift.Breaker(p, r.Tracker.Counts(p.Name)); !ok {
			return reconcile.Wait(waitBreaker, fixityv1.TooManyDriftedReason, msg)
		}
	}
	if ref != nil {
		owner, err := remediation.ReadOwner(ctx, r.APIReader, s.pod.Namespace, ref)
		switch {
		case err != nil:
			return reconcile.Fail(err)
		case owner == nil:
			// Gone: the garbage collector takes its pods. Never taken for a bare pod.
			return reconcile.Stop()
		}
		s.owner = owner
	}
	return reconcile.Next()
}

// admissible keeps the pod when the pod that would replace it is denied by admission now,
// unless every policy replacing it says drift.evictUnadmittable.
func (r *Reconciler) admissible(ctx context.Context, s *scope) reconcile.Outcome {
	repl, err := drift.Replacement(s.pod, s.owner)
	if err != nil {
		return reconcile.Fail(err)
	}
	denied, undecided := drift.DryRun(ctx, r.Matcher, r.Checks, repl)
	if len(denied) == 0 && undecided != "" {
		return reconcile.Wait(waitUndecided, "", "whether the replacement would be admitted cannot be decided yet: "+undecided)
	}
	if len(denied) == 0 {
		r.hold(ctx, s, nil)
		return reconcile.Next()
	}
	what := "the bare pod recreated from its admitted spec"
	if s.owner != nil {
		what = "the pod " + s.owner.String() + " would create in its place"
	}
	msg := fmt.Sprintf("Drifted pod %s is kept: %s would be denied: %s. %s", s.key(), what, strings.Join(denied, "; "), drift.FixFor(s.owner))
	for _, p := range s.by {
		if !drift.EvictsUnadmittable(p) {
			r.hold(ctx, s, &drift.Hold{Reason: fixityv1.ReplacementWouldBeDeniedReason, Message: msg})
			return reconcile.Wait(waitDenied, fixityv1.ReplacementWouldBeDeniedReason, msg)
		}
	}
	if s.changed {
		ctrl.LoggerFrom(ctx).Info("Replacing a drifted pod although its replacement would be denied (drift.evictUnadmittable)",
			"pod", klog.KObj(s.pod), "denials", strings.Join(denied, "; "))
	}
	return reconcile.Next()
}

// hold records (h) or clears (nil) why the drifted pod is kept, and tells it once per change.
func (r *Reconciler) hold(ctx context.Context, s *scope, h *drift.Hold) {
	if h != nil {
		for _, p := range s.by {
			h.Policies = append(h.Policies, p.Name)
		}
	}
	if !r.Tracker.SetHeld(s.key(), h) || h == nil {
		return
	}
	r.Events.Eventf(s.pod, s.by[0], corev1.EventTypeWarning, h.Reason, "Replace", "%s", h.Message)
	for _, p := range s.by {
		r.Events.Eventf(p, s.pod, corev1.EventTypeWarning, h.Reason, "Replace", "%s", h.Message)
	}
	ctrl.LoggerFrom(ctx).Info("Drifted pod kept", "pod", klog.KObj(s.pod), "reason", h.Reason, "message", h.Message)
}

// gate lets one pod of an owner be replaced at a time.
func (r *Reconciler) gate(ctx context.Context, s *scope) reconcile.Outcome {
	if s.owner == nil {
		return reconcile.Next()
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(s.pod.Namespace), client.MatchingFields{OwnerIndex: string(s.owner.UID)}); err != nil {
		return reconcile.Fail(err)
	}
	s.ownerPods = pods.Items
	if first := r.higherOrdinalDrifted(s); first != "" {
		return reconcile.Wait(remediation.GateWait, "", "StatefulSet pods are replaced from the highest ordinal down: "+first+" first")
	}
	v, err := r.Gate.Check(ctx, s.owner, s.pod, s.ownerPods)
	switch {
	case err != nil:
		return reconcile.Fail(err)
	case v.Stuck:
		r.hold(ctx, s, &drift.Hold{Reason: fixityv1.ReplacementStuckReason, Message: v.Message})
		return reconcile.Wait(v.RetryAfter, fixityv1.ReplacementStuckReason, v.Message)
	case !v.Open:
		r.hold(ctx, s, nil)
		ctrl.LoggerFrom(ctx).V(1).Info("Waiting for the owner", "pod", klog.KObj(s.pod), "reason", v.Message)
		return reconcile.Wait(v.RetryAfter, "", v.Message)
	}
	r.hold(ctx, s, nil)
	return reconcile.Next()
}

// higherOrdinalDrifted names a drifted pod of the same StatefulSet with a higher ordinal, which
// goes first, as in the StatefulSet's own rolling update; "" if none (or not a StatefulSet).
func (r *Reconciler) higherOrdinalDrifted(s *scope) string {
	if s.owner.Kind != "StatefulSet" {
		return ""
	}
	mine, ok := ordinal(s.pod)
	for i := range s.ownerPods {
		sib := &s.ownerPods[i]
		theirs, sok := ordinal(sib)
		if !ok || !sok || theirs <= mine || !sib.DeletionTimestamp.IsZero() {
			continue
		}
		st, seen := r.Tracker.Get(client.ObjectKeyFromObject(sib))
		if !seen || st.Held != nil {
			continue
		}
		for _, p := range s.by { // drifted under a policy that replaces it, not one that reports
			if drift.Replaceable(st.Findings[p.Name]) {
				return sib.Name
			}
		}
	}
	return ""
}

// ordinal is a StatefulSet pod's index: its apps.kubernetes.io/pod-index label, or the suffix of
// its name.
func ordinal(pod *corev1.Pod) (int, bool) {
	v, ok := pod.Labels[appsv1.PodIndexLabel]
	if !ok {
		i := strings.LastIndexByte(pod.Name, '-')
		if i < 0 {
			return 0, false
		}
		v = pod.Name[i+1:]
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// countReplaced counts a replacement started, under each policy replacing the pod and each check
// it found (a finding that never replaces, Kept, is not why).
func countReplaced(s *scope) {
	for _, p := range s.by {
		var counted []fixityv1.DriftCheck
		for _, f := range s.state.Findings[p.Name] {
			if !f.Kept && !slices.Contains(counted, f.Check) {
				counted = append(counted, f.Check)
				metrics.DriftReplaced.WithLabelValues(p.Name, string(f.Check)).Inc()
			}
		}
	}
}

// replace evicts the pod (its owner creates a fresh one) or, for a bare pod, saves its admitted
// spec for the recreate controller, which deletes it and creates it again.
func (r *Reconciler) replace(ctx context.Context, s *scope) reconcile.Outcome {
	log := ctrl.LoggerFrom(ctx)
	if s.owner == nil {
		if err := r.saveForRecreation(ctx, s); err != nil {
			return reconcile.Fail(err)
		}
		countReplaced(s)
		return reconcile.Next()
	}
	ev, err := r.Evictor.Evict(ctx, s.pod)
	switch {
	case err != nil:
		return reconcile.Fail(err)
	case ev.Result == remediation.Gone:
		return reconcile.Stop()
	case ev.Result == remediation.Refused:
		// A PodDisruptionBudget (or throttling) says not now: retry with backoff, never delete.
		if ev.Budget {
			for _, p := range s.by {
				metrics.EvictionsBlocked.WithLabelValues(p.Name).Inc()
			}
		}
		r.Events.Eventf(s.pod, s.by[0], corev1.EventTypeWarning, fixityv1.EventEvictionBlocked, "Replace",
			"Drifted pod cannot be evicted now (%s); retrying", ev.Reason)
		log.Info("Eviction refused; retrying", "pod", klog.KObj(s.pod), "retryIn", ev.RetryAfter, "reason", ev.Reason)
		return reconcile.Wait(ev.RetryAfter, "", ev.Reason)
	}
	log.Info("Evicted drifted pod", "pod", klog.KObj(s.pod), "owner", s.owner.String())
	// Recorded after the eviction, so a refused one leaves no entry behind. Lost to a crash in
	// between, the gate's floor (desired − 1 Ready) still holds the owner's next pod.
	if err := r.Gate.Record(ctx, s.owner, s.pod, s.ownerPods); err != nil {
		log.Error(err, "Recording the replacement in the ledger", "pod", klog.KObj(s.pod))
	}
	countReplaced(s)
	for _, p := range s.by {
		r.Ledger.Replaced(ctx, p.Name, metrics.MethodEvicted)
		r.Events.Eventf(s.pod, p, corev1.EventTypeNormal, fixityv1.EventReplaced, "Replace", "[policy %s] Drifted pod evicted to be replaced by a fresh one", p.Name)
		r.Events.Eventf(p, s.pod, corev1.EventTypeNormal, fixityv1.EventReplaced, "Replace", "Drifted pod %s/%s evicted", s.pod.Namespace, s.pod.Name)
	}
	return reconcile.Stop()
}
