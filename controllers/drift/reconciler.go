package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/policy"
)

// Requeue intervals. None of them is a sleep: the pod is looked at again when they pass or when
// it (or its policy, or a grant) changes, whichever is first.
const (
	// waitSibling is how soon an owner busy with a replacement is looked at again.
	waitSibling = 2 * time.Second
	// waitBlocked is how soon an eviction refused by a PodDisruptionBudget (or throttled) is
	// first retried; each refusal in a row doubles it, up to waitBlockedMax.
	waitBlocked    = time.Second
	waitBlockedMax = 2 * time.Minute
	// waitUndecided is how soon a pod whose drift could not be decided is looked at again.
	waitUndecided = 30 * time.Second
	// waitBreaker is how soon a pod held by an open circuit breaker is looked at again.
	waitBreaker = 15 * time.Second
)

// ownerIndex indexes pods by the UID of their controller, so the siblings of a pod are found
// without listing its whole namespace.
const ownerIndex = "fixity.dev/controller-uid"

// savedPodAnnotation names the pod (namespace/name) whose spec a recreate ConfigMap holds, and
// savedUIDAnnotation the UID of the pod that was deleted: only that pod's going brings it back.
const (
	savedPodAnnotation = fixityv1.Prefix + "pod"
	savedUIDAnnotation = fixityv1.Prefix + "pod-uid"
)

// RecreateLabel marks the ConfigMaps that hold the spec of a bare pod being recreated.
const RecreateLabel = fixityv1.Prefix + "recreate"

// Reconciler detects and remediates drift of one pod.
type Reconciler struct {
	client.Client
	// APIReader reads what must be current (the saved specs of bare pods).
	APIReader client.Reader
	Matcher   *policy.Matcher
	Detector  *drift.Detector
	Tracker   *drift.Tracker
	Events    events.EventRecorder
	// Namespace is the operator's own namespace, where the saved specs of bare pods are kept:
	// the operator creates pods from them, so nobody who can only write the workload's
	// namespace may write them.
	Namespace string

	mu sync.Mutex
	// complete remembers, per policy, the generation under which every matched pod has been
	// looked at, so the circuit breaker's counts can be trusted.
	complete map[string]int64
	// recreating holds the bare pods deleted for recreation and not yet back, with the UID of
	// the pod deleted; a restart rebuilds it from the saved specs (recoverRecreations).
	recreating map[types.NamespacedName]types.UID
	// evicting remembers, per owner, the pod last evicted until the cache shows it going, so a
	// sibling reconciled right after is not evicted on a stale view.
	evicting map[types.UID]types.UID
	// refused counts, per pod, the evictions refused in a row, for the retry backoff.
	refused map[types.NamespacedName]int
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;create;patch;delete
// +kubebuilder:rbac:groups=fixity.dev,resources=accessgrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=fixity.dev,resources=immutabilitypolicies/status,verbs=get;update;patch

// Reconcile looks at one pod.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Get(ctx, req.NamespacedName, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.Tracker.Forget(req.NamespacedName)
		r.forgetRefusals(req.NamespacedName)
		if old, pending := r.pendingRecreation(req.NamespacedName); pending {
			return r.recreatePending(ctx, req.NamespacedName, old)
		}
		return ctrl.Result{}, nil
	}
	if old, pending := r.pendingRecreation(req.NamespacedName); pending && old != pod.UID {
		// Back under its name (the saved spec could not be removed right after creating it).
		return ctrl.Result{}, r.finishRecreation(ctx, req.NamespacedName, old)
	}
	if !pod.DeletionTimestamp.IsZero() || policy.AlwaysExcluded(pod.Namespace) {
		return ctrl.Result{}, nil
	}
	policies, err := r.Matcher.ForPod(ctx, pod.Namespace, pod.Labels)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(policies) == 0 {
		r.Tracker.Forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	state := drift.PodState{Findings: map[string][]drift.Finding{}, Generations: map[string]int64{}}
	var undecided error
	for i := range policies {
		fs, err := r.Detector.Detect(ctx, pod, &policies[i])
		var u *drift.UndecidedError
		if err != nil && !errors.As(err, &u) {
			return ctrl.Result{}, err
		}
		undecided = errors.Join(undecided, err)
		state.Findings[policies[i].Name] = fs
		state.Generations[policies[i].Name] = policies[i].Generation
	}
	newly := r.Tracker.Set(req.NamespacedName, state) && state.Drifted()
	if newly {
		r.report(ctx, pod, policies, state)
	}
	if !state.Drifted() {
		if undecided != nil {
			ctrl.LoggerFrom(ctx).Info("Drift cannot be decided yet", "pod", klog.KObj(pod), "reason", undecided.Error())
			return ctrl.Result{RequeueAfter: waitUndecided}, nil
		}
		return ctrl.Result{}, nil
	}
	return r.remediate(ctx, pod, policies, state, newly)
}

// report tells the pod's and the policies' watchers what was found.
func (r *Reconciler) report(ctx context.Context, pod *corev1.Pod, policies []fixityv1.ImmutabilityPolicy, state drift.PodState) {
	for i := range policies {
		p := &policies[i]
		fs := state.Findings[p.Name]
		if len(fs) == 0 {
			continue
		}
		var lines []string
		for _, f := range fs {
			detected.WithLabelValues(p.Name, string(f.Check)).Inc()
			lines = append(lines, f.String())
		}
		msg := strings.Join(lines, "; ")
		r.Events.Eventf(pod, p, corev1.EventTypeWarning, "DriftDetected", "Detect", "[policy %s] %s", p.Name, msg)
		r.Events.Eventf(p, pod, corev1.EventTypeWarning, "DriftDetected", "Detect", "Pod %s/%s: %s", pod.Namespace, pod.Name, msg)
		ctrl.LoggerFrom(ctx).Info("Drift detected", "pod", klog.KObj(pod), "policy", p.Name, "findings", msg)
	}
}

// remediate replaces a drifted pod if the policies that found it drifted say so and may. newly
// says the drift was just found (so the pod is told once that it is not replaced).
func (r *Reconciler) remediate(ctx context.Context, pod *corev1.Pod, policies []fixityv1.ImmutabilityPolicy, state drift.PodState, newly bool) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	owner := metav1.GetControllerOfNoCopy(pod)
	job := owner != nil && owner.Kind == "Job" && strings.HasPrefix(owner.APIVersion, "batch/")
	var by []*fixityv1.ImmutabilityPolicy
	for i := range policies {
		p := &policies[i]
		if len(state.Findings[p.Name]) > 0 && drift.Replaces(p) && (!job || p.Spec.Drift.JobPods == fixityv1.DriftReplace) {
			by = append(by, p)
		}
	}
	if len(by) == 0 {
		if job && newly {
			r.Events.Eventf(pod, nil, corev1.EventTypeWarning, "ReplacementSkipped", "Replace",
				"Drifted pod of Job %s is reported, not replaced (drift.jobPods: Report)", owner.Name)
		}
		return ctrl.Result{}, nil // Report or Audit: reported above
	}
	for _, p := range by {
		ok, wait, err := r.breakerAllows(ctx, p)
		if err != nil || !ok {
			return ctrl.Result{RequeueAfter: wait}, err
		}
	}
	if owner == nil {
		return r.recreate(ctx, pod, by)
	}
	if busy, err := r.ownerBusy(ctx, pod, owner); err != nil || busy {
		if busy {
			log.V(1).Info("Owner is busy with a replacement; waiting", "pod", klog.KObj(pod), "owner", owner.Name)
		}
		return ctrl.Result{RequeueAfter: waitSibling}, err
	}

	eviction := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	}
	if err := r.SubResource("eviction").Create(ctx, pod, eviction); err != nil {
		switch {
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget (or the API server's throttling) says not now: retry with
			// backoff, never fall back to deleting.
			wait := r.backoff(client.ObjectKeyFromObject(pod))
			if apierrors.HasStatusCause(err, policyv1.DisruptionBudgetCause) {
				for _, p := range by {
					evictionsBlocked.WithLabelValues(p.Name).Inc()
				}
			}
			r.Events.Eventf(pod, by[0], corev1.EventTypeWarning, "EvictionBlocked", "Replace",
				"Drifted pod cannot be evicted now (%v); retrying", err)
			log.Info("Eviction refused; retrying", "pod", klog.KObj(pod), "retryIn", wait, "error", err.Error())
			return ctrl.Result{RequeueAfter: wait}, nil
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			r.forgetRefusals(client.ObjectKeyFromObject(pod))
			return ctrl.Result{}, nil // gone or replaced already
		}
		return ctrl.Result{}, fmt.Errorf("evicting drifted pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	r.forgetRefusals(client.ObjectKeyFromObject(pod))
	r.mu.Lock()
	if r.evicting == nil {
		r.evicting = map[types.UID]types.UID{}
	}
	r.evicting[owner.UID] = pod.UID
	r.mu.Unlock()
	log.Info("Evicted drifted pod", "pod", klog.KObj(pod), "owner", owner.Kind+"/"+owner.Name)
	r.replaced(ctx, pod, by, "evicted")
	return ctrl.Result{}, nil
}

// backoff counts one more refused eviction of pod and returns how long to wait before the next
// try: waitBlocked, doubled for each refusal in a row, at most waitBlockedMax.
func (r *Reconciler) backoff(pod types.NamespacedName) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[types.NamespacedName]int{}
	}
	n := r.refused[pod]
	r.refused[pod] = n + 1
	return min(waitBlocked<<min(n, 16), waitBlockedMax)
}

func (r *Reconciler) forgetRefusals(pod types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.refused, pod)
}

// breakerAllows reports whether p's circuit breaker lets it replace pods now. The counts come
// from the tracker, so they are only trusted once every pod p matched has been looked at under
// this generation of p (after a start or a policy change); until then, wait. Pods created later
// are fresh replacements, admitted under p: they are counted once looked at.
func (r *Reconciler) breakerAllows(ctx context.Context, p *fixityv1.ImmutabilityPolicy) (bool, time.Duration, error) {
	r.mu.Lock()
	complete := r.complete[p.Name] == p.Generation
	r.mu.Unlock()
	if !complete {
		matched, err := r.matchedPods(ctx, p)
		if err != nil {
			return false, 0, err
		}
		for _, key := range matched {
			if s, seen := r.Tracker.Get(key); !seen || !s.EvaluatedUnder(p.Name, p.Generation) {
				return false, waitSibling, nil
			}
		}
		r.mu.Lock()
		if r.complete == nil {
			r.complete = map[string]int64{}
		}
		r.complete[p.Name] = p.Generation
		r.mu.Unlock()
	}
	matched, drifted := r.Tracker.Counts(p.Name)
	ok, msg := drift.Breaker(p, matched, drifted)
	if !ok {
		breakerOpen.WithLabelValues(p.Name).Set(1)
		ctrl.LoggerFrom(ctx).Info("Circuit breaker open; not replacing", "policy", p.Name, "reason", msg)
		return false, waitBreaker, nil
	}
	breakerOpen.WithLabelValues(p.Name).Set(0)
	return true, 0, nil
}

// matchedPods lists the live pods p matches, from the cache.
func (r *Reconciler) matchedPods(ctx context.Context, p *fixityv1.ImmutabilityPolicy) ([]types.NamespacedName, error) {
	var nss corev1.NamespaceList
	if err := r.List(ctx, &nss, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []types.NamespacedName
	for i := range nss.Items {
		ns := &nss.Items[i]
		if ok, err := policy.MatchesNamespace(p, ns); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		var pods corev1.PodList
		// Read-only: no copy of every pod of the namespace per decision.
		if err := r.List(ctx, &pods, client.InNamespace(ns.Name), client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for j := range pods.Items {
			pod := &pods.Items[j]
			if !pod.DeletionTimestamp.IsZero() {
				continue
			}
			if ok, err := policy.Matches(p, ns, pod.Labels); err != nil {
				return nil, err
			} else if ok {
				out = append(out, client.ObjectKeyFromObject(pod))
			}
		}
	}
	return out, nil
}

// ownerBusy reports whether another pod of owner is being replaced: terminating, not Ready yet
// (the replacement of the last one), or just evicted and not yet seen going in the cache.
func (r *Reconciler) ownerBusy(ctx context.Context, pod *corev1.Pod, owner *metav1.OwnerReference) (bool, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(pod.Namespace), client.MatchingFields{ownerIndex: string(owner.UID)},
		client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	r.mu.Lock()
	last, evicting := r.evicting[owner.UID]
	r.mu.Unlock()
	if evicting {
		for i := range pods.Items {
			if pods.Items[i].UID == last && pods.Items[i].DeletionTimestamp.IsZero() {
				return true, nil // evicted, but the cache does not show it yet
			}
		}
		r.mu.Lock()
		delete(r.evicting, owner.UID)
		r.mu.Unlock()
	}
	for i := range pods.Items {
		sib := &pods.Items[i]
		if sib.UID == pod.UID {
			continue
		}
		if !sib.DeletionTimestamp.IsZero() || !podReady(sib) {
			return true, nil
		}
	}
	return false, nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// replaced records a replacement: Events, metrics and each policy's status.replacedPods.
func (r *Reconciler) replaced(ctx context.Context, pod *corev1.Pod, by []*fixityv1.ImmutabilityPolicy, method string) {
	for _, p := range by {
		replacements.WithLabelValues(p.Name, method).Inc()
		r.Events.Eventf(pod, p, corev1.EventTypeNormal, "Replaced", "Replace", "[policy %s] Drifted pod %s to be replaced by a fresh one", p.Name, method)
		r.Events.Eventf(p, pod, corev1.EventTypeNormal, "Replaced", "Replace", "Drifted pod %s/%s %s", pod.Namespace, pod.Name, method)
		if err := r.countReplacement(ctx, p.Name); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Counting replacement", "policy", p.Name)
		}
	}
}

// countReplacement adds one to status.replacedPods, with an optimistic lock so concurrent
// writers of the status do not lose counts.
func (r *Reconciler) countReplacement(ctx context.Context, name string) error {
	for range 5 {
		p := &fixityv1.ImmutabilityPolicy{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return client.IgnoreNotFound(err)
		}
		before := p.DeepCopy()
		p.Status.ReplacedPods++
		err := r.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("policy %s: status kept changing", name)
}

// recreateName is the ConfigMap holding the saved spec of the bare pod with this UID.
func recreateName(uid types.UID) string { return "fixity-recreate-" + string(uid) }

// recreate saves a bare pod's admitted spec, then deletes it; once it is gone recreatePending
// creates it again under the same name. The saved spec survives a restart of the operator.
func (r *Reconciler) recreate(ctx context.Context, cached *corev1.Pod, by []*fixityv1.ImmutabilityPolicy) (ctrl.Result, error) {
	// The cache keeps a trimmed pod; the saved spec must be whole.
	pod := &corev1.Pod{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.UID != cached.UID || !pod.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	fresh, err := admittedSpec(pod)
	if err != nil {
		return ctrl.Result{}, err
	}
	raw, err := json.Marshal(fresh)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("saving pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	key := client.ObjectKeyFromObject(pod)
	saved := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.Namespace, Name: recreateName(pod.UID),
			Labels: map[string]string{RecreateLabel: "true"},
			Annotations: map[string]string{
				fixityv1.Prefix + "policies": policyNames(by),
				savedPodAnnotation:           key.String(),
				savedUIDAnnotation:           string(pod.UID),
			},
		},
		Data: map[string]string{"pod.json": string(raw)},
	}
	if err := r.Create(ctx, saved); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("saving pod %s/%s before replacing it: %w", pod.Namespace, pod.Name, err)
	}
	r.setRecreating(key, pod.UID)
	if err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("deleting drifted bare pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted drifted bare pod; it is recreated once gone", "pod", klog.KObj(pod), "savedIn", klog.KObj(saved))
	return ctrl.Result{}, nil
}

// admittedSpec is the pod as it was admitted, to be created afresh: each container's image is
// the one in its fixity.dev/verified record (an image changed in place does not come back),
// the operator's annotations are dropped (admission writes them again for the new pod), and
// ephemeral containers and the node are left out.
func admittedSpec(pod *corev1.Pod) (*corev1.Pod, error) {
	rec, _, err := admitted.ReadVerified(pod)
	if err != nil {
		return nil, err
	}
	fresh := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: pod.Namespace, Name: pod.Name,
			Labels: pod.Labels,
			Annotations: maps.Collect(func(yield func(string, string) bool) {
				for k, v := range pod.Annotations {
					if !strings.HasPrefix(k, fixityv1.Prefix) && !yield(k, v) {
						return
					}
				}
			}),
		},
		Spec: *pod.Spec.DeepCopy(),
	}
	fresh.Spec.NodeName = ""
	fresh.Spec.EphemeralContainers = nil
	for _, cs := range [][]corev1.Container{fresh.Spec.InitContainers, fresh.Spec.Containers} {
		for i := range cs {
			if e, ok := rec[cs[i].Name]; ok && e.Image != "" {
				cs[i].Image = e.Image
			}
		}
	}
	return fresh, nil
}

func policyNames(ps []*fixityv1.ImmutabilityPolicy) string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// recreatePending creates a bare pod again from its saved spec once the pod with UID old is gone.
func (r *Reconciler) recreatePending(ctx context.Context, key types.NamespacedName, old types.UID) (ctrl.Result, error) {
	saved := &corev1.ConfigMap{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: recreateName(old)}, saved); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetRecreation(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal([]byte(saved.Data["pod.json"]), pod); err != nil {
		return ctrl.Result{}, fmt.Errorf("ConfigMap %s/%s: data pod.json: %w", saved.Namespace, saved.Name, err)
	}
	if client.ObjectKeyFromObject(pod) != key {
		return ctrl.Result{}, fmt.Errorf("ConfigMap %s/%s: data pod.json is pod %s, not %s", saved.Namespace, saved.Name, client.ObjectKeyFromObject(pod), key)
	}
	err := r.Create(ctx, pod)
	switch {
	case apierrors.IsAlreadyExists(err):
		existing := &corev1.Pod{}
		if err := r.APIReader.Get(ctx, key, existing); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if existing.UID == old {
			return ctrl.Result{RequeueAfter: waitSibling}, nil // the old one is still terminating
		}
		// Someone else (or an earlier attempt of ours) created the pod under that name.
		return ctrl.Result{}, r.finishRecreation(ctx, key, old)
	case err != nil:
		// Admission may refuse it (its image no longer verifies): the spec stays saved and
		// the refusal is told, so the pod is never silently lost.
		r.Events.Eventf(saved, nil, corev1.EventTypeWarning, "RecreateFailed", "Replace", "Recreating drifted pod %s: %v", key, err)
		return ctrl.Result{}, fmt.Errorf("recreating pod %s: %w", key, err)
	}
	var by []*fixityv1.ImmutabilityPolicy
	for _, name := range strings.Split(saved.Annotations[fixityv1.Prefix+"policies"], ",") {
		if name != "" {
			by = append(by, &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	}
	ctrl.LoggerFrom(ctx).Info("Recreated drifted bare pod", "pod", klog.KObj(pod))
	r.replacedBare(ctx, pod, by)
	return ctrl.Result{}, r.finishRecreation(ctx, key, old)
}

// finishRecreation removes the saved spec of the pod with UID old, now that key exists again.
func (r *Reconciler) finishRecreation(ctx context.Context, key types.NamespacedName, old types.UID) error {
	saved := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: recreateName(old)}}
	if err := r.Delete(ctx, saved); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing saved spec %s/%s: %w", saved.Namespace, saved.Name, err)
	}
	r.forgetRecreation(key)
	return nil
}

func (r *Reconciler) pendingRecreation(key types.NamespacedName) (types.UID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.recreating[key]
	return old, ok
}

func (r *Reconciler) setRecreating(key types.NamespacedName, old types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recreating == nil {
		r.recreating = map[types.NamespacedName]types.UID{}
	}
	r.recreating[key] = old
}

func (r *Reconciler) forgetRecreation(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.recreating, key)
}

// replacedBare records a recreation; the policies are known by name only.
func (r *Reconciler) replacedBare(ctx context.Context, pod *corev1.Pod, by []*fixityv1.ImmutabilityPolicy) {
	for _, p := range by {
		full := &fixityv1.ImmutabilityPolicy{}
		if err := r.Get(ctx, client.ObjectKey{Name: p.Name}, full); err == nil {
			p = full
		}
		replacements.WithLabelValues(p.Name, "recreated").Inc()
		r.Events.Eventf(pod, nil, corev1.EventTypeNormal, "Recreated", "Replace", "[policy %s] Drifted bare pod recreated from its admitted spec", p.Name)
		if err := r.countReplacement(ctx, p.Name); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Counting replacement", "policy", p.Name)
		}
	}
}

// recoverRecreations finishes recreations a previous leader started: a bare pod deleted just
// before a restart has no event left to bring it back. Only the operator's namespace is read.
func (r *Reconciler) recoverRecreations(ctx context.Context) error {
	var saved corev1.ConfigMapList
	if err := r.APIReader.List(ctx, &saved, client.InNamespace(r.Namespace), client.MatchingLabels{RecreateLabel: "true"}); err != nil {
		return fmt.Errorf("listing saved pod specs: %w", err)
	}
	for i := range saved.Items {
		cm := &saved.Items[i]
		ns, name, ok := strings.Cut(cm.Annotations[savedPodAnnotation], "/")
		old := types.UID(cm.Annotations[savedUIDAnnotation])
		if !ok || old == "" || cm.Name != recreateName(old) {
			ctrl.LoggerFrom(ctx).Info("Ignoring a saved pod spec without its pod and UID", "configMap", klog.KObj(cm))
			continue
		}
		key := types.NamespacedName{Namespace: ns, Name: name}
		r.setRecreating(key, old)
		// The pod's own reconcile decides: gone (recreate), still there (delete it again), or
		// back under a new UID (clean up).
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Finishing a saved pod's recreation", "pod", key)
		}
	}
	return nil
}

// SetupWithManager registers the controller: pods, and the policies and grants whose changes
// change what pods are drifted.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, ownerIndex, func(o client.Object) []string {
		if c := metav1.GetControllerOfNoCopy(o); c != nil {
			return []string{string(c.UID)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		return r.recoverRecreations(ctx)
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.Pod{}).
		Watches(&fixityv1.ImmutabilityPolicy{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.recheck(ctx, e.Object, q)
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.recheck(ctx, e.ObjectNew, q)
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
				r.recheck(ctx, e.Object, q)
			},
		}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fixityv1.AccessGrant{}, handler.EnqueueRequestsFromMapFunc(r.podsOfGrant)).
		Named("drift").
		Complete(r)
}

// recheckPerSecond spreads the re-check of a policy's pods after a change over time, so that a
// policy edit does not turn into a burst of registry calls and status writes.
const recheckPerSecond = 100

// recheck queues every pod of a policy that was created, changed or deleted, at most
// recheckPerSecond a second (Unverified: an authority removed, a key replaced). Verdicts are
// cached per digest and policy generation, so the registry sees one verification per distinct
// image, not one per pod.
func (r *Reconciler) recheck(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
	for i, req := range r.podsOfPolicy(ctx, obj) {
		q.AddAfter(req, time.Duration(i/recheckPerSecond)*time.Second)
	}
}

// podsOfPolicy lists the pods a policy matches and those it found drifted.
func (r *Reconciler) podsOfPolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	p, ok := obj.(*fixityv1.ImmutabilityPolicy)
	if !ok {
		return nil
	}
	keys, err := r.matchedPods(ctx, p)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the pods of a policy", "policy", p.Name)
		return nil
	}
	// Pods that no longer match are dropped from the counts when next looked at.
	keys = append(keys, r.Tracker.Drifted(p.Name)...)
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	keys = slices.Compact(keys)
	out := make([]ctrl.Request, len(keys))
	for i, k := range keys {
		out[i] = ctrl.Request{NamespacedName: k}
	}
	return out
}

// podsOfGrant looks again at the pods a grant tainted when the grant changes (ends).
func (r *Reconciler) podsOfGrant(ctx context.Context, obj client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []ctrl.Request
	for i := range pods.Items {
		nn, ok := grants.TaintGrant(pods.Items[i].Annotations[fixityv1.TaintedAnnotation])
		if ok && nn.Name == obj.GetName() && nn.Namespace == obj.GetNamespace() {
			out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
		}
	}
	return out
}
