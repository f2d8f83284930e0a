package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/test/registry"
)

// pushed pushes a fresh image to the loopback registry and returns it by digest.
func pushed(t *testing.T, repo string) string {
	t.Helper()
	d, err := reg.PushRandomImage(context.Background(), repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// maxDrifted sets the circuit breaker of the namespace's policy.
func maxDrifted(pct int32) func(*fixityv1.ImmutabilityPolicySpec) {
	return func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.MaxDriftedPercent = ptr.To(pct) }
}

// rollOut creates a Deployment of image and waits until all its pods are Ready.
func rollOut(t *testing.T, ctx context.Context, ns, name string, replicas int32, img string, edits ...func(*appsv1.Deployment)) []corev1.Pod {
	t.Helper()
	g := gomega.NewWithT(t)
	dep := deployment(ns, name, replicas)
	dep.Spec.Template.Spec.Containers[0].Image = img
	for _, edit := range edits {
		edit(dep)
	}
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed())
	var pods []corev1.Pod
	g.Eventually(func(g gomega.Gomega) {
		pods = readyPods(ctx, ns, name)(g)
		g.Expect(pods).To(gomega.HaveLen(int(replicas)))
	}, eventually, poll).Should(gomega.Succeed())
	return pods
}

// runDigest makes the pod report that it runs digest, as a kubelet does after pulling another
// image than the one admitted.
func runDigest(ctx context.Context, pod *corev1.Pod, digest string) error {
	fresh := &corev1.Pod{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), fresh); err != nil {
		return err
	}
	before := fresh.DeepCopy()
	repo, _, _ := strings.Cut(fresh.Spec.Containers[0].Image, "@")
	fresh.Status.ContainerStatuses[0].ImageID = "docker-pullable://" + repo + "@" + strings.SplitN(digest, "@", 2)[1]
	return k8s.Status().Patch(ctx, fresh, client.MergeFrom(before))
}

// gone reports whether the pod with this UID no longer exists (a pod of the same name may).
func gone(ctx context.Context, pod corev1.Pod) func() bool {
	return func() bool {
		p := &corev1.Pod{}
		err := k8s.Get(ctx, client.ObjectKeyFromObject(&pod), p)
		return client.IgnoreNotFound(err) == nil && (err != nil || p.UID != pod.UID)
	}
}

func policyOf(ctx context.Context, name string) func(g gomega.Gomega) *fixityv1.ImmutabilityPolicy {
	return func(g gomega.Gomega) *fixityv1.ImmutabilityPolicy {
		p := &fixityv1.ImmutabilityPolicy{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
		return p
	}
}

func remediationAllowed(status metav1.ConditionStatus, reason string) gomega.OmegaMatcher {
	return gomega.WithTransform(func(p *fixityv1.ImmutabilityPolicy) *metav1.Condition {
		return meta.FindStatusCondition(p.Status.Conditions, fixityv1.RemediationAllowedCondition)
	}, gomega.And(gomega.Not(gomega.BeNil()), gomega.HaveField("Status", status), gomega.HaveField("Reason", reason)))
}

// noDisruptions creates a PodDisruptionBudget that keeps all pods of app, and waits until the
// disruption controller has counted them.
func noDisruptions(t *testing.T, ctx context.Context, ns, app string, pods int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	g := gomega.NewWithT(t)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(pods)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
	}
	g.Expect(k8s.Create(ctx, pdb)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pdb), pdb)).To(gomega.Succeed())
		g.Expect(pdb.Status.CurrentHealthy).To(gomega.Equal(pods))
	}, eventually, poll).Should(gomega.Succeed())
	return pdb
}

// Each drift check replaces a Deployment pod; the ReplicaSet brings a fresh one.
func TestDriftedDeploymentPodsAreReplaced(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.EphemeralContainers = fixityv1.Allow })
	img, other := pushed(t, "shop/web"), pushed(t, "shop/other")
	pods := rollOut(t, ctx, ns, "web", 3, img)

	for _, tc := range []struct {
		check  fixityv1.DriftCheck
		induce func(pod *corev1.Pod) error
	}{
		{fixityv1.CheckImageDigest, func(pod *corev1.Pod) error { return runDigest(ctx, pod, other) }},
		{fixityv1.CheckEphemeralContainers, func(pod *corev1.Pod) error {
			pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: img}}}
			return k8s.SubResource("ephemeralcontainers").Update(ctx, pod)
		}},
		{fixityv1.CheckSpecChange, func(pod *corev1.Pod) error {
			before := pod.DeepCopy()
			pod.Spec.Containers[0].Image = other
			return k8s.Patch(ctx, pod, client.MergeFrom(before))
		}},
	} {
		pod := pods[0]
		g.Expect(tc.induce(&pod)).To(gomega.Succeed(), tc.check)
		g.Eventually(gone(ctx, pods[0]), eventually, poll).Should(gomega.BeTrue(), "%s: the drifted pod is evicted", tc.check)
		g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElements(
			gomega.ContainSubstring(fixityv1.EventDriftDetected+": [policy "+ns+"] "+string(tc.check)),
			gomega.HavePrefix(fixityv1.EventReplaced+": "),
		), tc.check)
		g.Eventually(func(g gomega.Gomega) {
			pods = readyPods(ctx, ns, "web")(g)
			g.Expect(pods).To(gomega.HaveLen(3))
			for _, p := range pods {
				g.Expect(p.UID).NotTo(gomega.Equal(pod.UID))
			}
		}, eventually, poll).Should(gomega.Succeed(), "%s: the ReplicaSet brings a fresh pod", tc.check)
	}
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.ReplacedPods", int64(3)),
		gomega.HaveField("Status.MatchedPods", int32(3)),
		gomega.HaveField("Status.DriftedPods", int32(0)),
	))
	// Replacements by check, as the dashboard shows them.
	body := scrape(g)
	for _, check := range []fixityv1.DriftCheck{fixityv1.CheckImageDigest, fixityv1.CheckEphemeralContainers, fixityv1.CheckSpecChange} {
		g.Expect(body).To(gomega.MatchRegexp(`%s\{check=%q,policy=%q\} 1\n`, metrics.DriftReplacedName, check, ns))
	}
}

// A pod accessed under an AccessGrant is replaced once the grant has ended.
func TestAccessedPodIsReplacedWhenTheGrantEnds(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx)
	pods := rollOut(t, ctx, ns, "web", 2, pushed(t, "shop/web"))
	target := pods[0]

	out, err := alice.kubectlStdin(grantManifest(ns, "short", target.Name, "Exec", "5s"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(func() bool {
		out, _ := alice.kubectl("exec", "-n", ns, target.Name, "--", "true")
		return admittedPastFixity(out)
	}, eventually, poll).Should(gomega.BeTrue())
	g.Eventually(gone(ctx, target), eventually, poll).Should(gomega.BeTrue())
	g.Expect(events(ctx, ns, target.Name)(g)).To(gomega.ContainElement(gomega.ContainSubstring(
		fmt.Sprintf("%s: exec by alice under grant %s/short, which has ended", fixityv1.CheckInteractiveAccess, ns))))
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.HaveLen(2))
}

// A pod that was not admitted by Fixity (created before its policy) is verified now: it stays
// if it passes, it is replaced if it does not.
func TestUnverifiedPodsAreCheckedNow(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	name := uniqueName("legacy")
	g.Expect(env.CreateNamespace(ctx, name)).To(gomega.Succeed())
	good := rollOut(t, ctx, name, "good", 1, pushed(t, "shop/good"))
	bad := rollOut(t, ctx, name, "bad", 1, "registry.example/shop/legacy@sha256:"+strings.Repeat("e", 64))

	ns := &corev1.Namespace{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(gomega.Succeed())
	ns.Labels["fixity.dev/enforce"] = name
	g.Expect(k8s.Update(ctx, ns)).To(gomega.Succeed())
	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match:  fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": name}}},
			Images: fixityv1.ImageRules{AllowedRegistries: []string{reg.Host() + "/"}},
			Drift:  fixityv1.DriftRules{MaxDriftedPercent: ptr.To[int32](50)},
		},
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })

	// The bad pod is found Unverified; its ReplicaSet would create the same pod, which admission
	// denies, so it is kept and reported rather than evicted into an outage.
	g.Eventually(events(ctx, name, bad[0].Name), eventually, poll).Should(gomega.ContainElements(
		gomega.And(gomega.HavePrefix(fixityv1.EventDriftDetected+": "), gomega.ContainSubstring("Unverified"), gomega.ContainSubstring("is not from an allowed registry")),
		gomega.HavePrefix(fixityv1.EventReplacementWouldBeDenied+": "),
	))
	g.Eventually(policyOf(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.MatchedPods", int32(2)),
		gomega.HaveField("Status.DriftedPods", int32(1)),
		gomega.HaveField("Status.HeldPods", int32(1)),
	), "both pods were evaluated: the good one is clean")
	g.Consistently(func() bool { return gone(ctx, good[0])() || gone(ctx, bad[0])() }, 3*time.Second, poll).Should(gomega.BeFalse(),
		"a pod that passes today's rules is left alone, and one whose replacement would be denied is kept")
}

// A PodDisruptionBudget that allows no disruption blocks the eviction: the pod is reported, never
// deleted behind the budget's back.
func TestPodDisruptionBudgetBlocksReplacement(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	pods := rollOut(t, ctx, ns, "web", 1, pushed(t, "shop/web"))
	pdb := noDisruptions(t, ctx, ns, "web", 1)

	g.Expect(runDigest(ctx, &pods[0], pushed(t, "shop/other"))).To(gomega.Succeed())
	g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventEvictionBlocked + ": ")))
	g.Consistently(gone(ctx, pods[0]), 3*time.Second, poll).Should(gomega.BeFalse())

	g.Expect(k8s.Delete(ctx, pdb)).To(gomega.Succeed())
	g.Eventually(gone(ctx, pods[0]), eventually, poll).Should(gomega.BeTrue(), "replaced once the budget allows it")
	g.Eventually(scrape, eventually, poll).Should(gomega.And(
		gomega.MatchRegexp(metrics.DriftDetectedName+`\{check="ImageDigest",policy=%q\} [1-9]`, ns),
		gomega.MatchRegexp(metrics.EvictionsBlockedName+`\{policy=%q\} [1-9]`, ns),
		gomega.MatchRegexp(metrics.DriftReplacementsName+`\{method="`+metrics.MethodEvicted+`",policy=%q\} 1\n`, ns),
	))
}

// scrape returns what the manager's /metrics endpoint serves.
func scrape(g gomega.Gomega) string {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	return string(body)
}

// A drifted Job pod is reported, not replaced, unless the policy says drift.jobPods: Replace;
// then the Job controller starts a fresh pod.
func TestJobPods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	img, other := pushed(t, "shop/batch"), pushed(t, "shop/other")
	runJob := func(ns string) corev1.Pod {
		t.Helper()
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "batch"},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](3),
				Template: corev1.PodTemplateSpec{
					// keepRunning: KWOK completes Job pods at once otherwise (hack/kwok/stages.yaml).
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "batch", "keepRunning": "true"}},
					Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
						Containers: []corev1.Container{{Name: "web", Image: img}}},
				},
			},
		}
		g.Expect(k8s.Create(ctx, job)).To(gomega.Succeed())
		var pods []corev1.Pod
		g.Eventually(func(g gomega.Gomega) {
			pods = readyPods(ctx, ns, "batch")(g)
			g.Expect(pods).To(gomega.HaveLen(1))
		}, eventually, poll).Should(gomega.Succeed())
		g.Expect(runDigest(ctx, &pods[0], other)).To(gomega.Succeed())
		return pods[0]
	}

	reported := enforcedNamespace(t, ctx, maxDrifted(100))
	pod := runJob(reported)
	g.Eventually(events(ctx, reported, pod.Name), eventually, poll).Should(gomega.ContainElement(
		gomega.HavePrefix(fixityv1.EventReplacementSkipped + ": Drifted pod of Job batch is reported, not replaced (drift.jobPods: Report)")))
	g.Expect(events(ctx, reported, pod.Name)(g)).To(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected + ": ")))
	g.Expect(gone(ctx, pod)()).To(gomega.BeFalse(), "reported, not replaced")

	replaced := enforcedNamespace(t, ctx, maxDrifted(100), func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.JobPods = fixityv1.DriftReplace })
	pod = runJob(replaced)
	g.Eventually(gone(ctx, pod), eventually, poll).Should(gomega.BeTrue(), "evicted")
	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, replaced, "batch")(g)
		g.Expect(pods).To(gomega.HaveLen(1))
		g.Expect(pods[0].UID).NotTo(gomega.Equal(pod.UID), "the Job controller started a fresh pod")
	}, eventually, poll).Should(gomega.Succeed())
}

// A bare pod has no controller to bring it back: it is recreated from its admitted spec under the
// same name. An image changed in place does not come back with it.
func TestBarePodIsRecreated(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	img, other := pushed(t, "shop/solo"), pushed(t, "shop/other")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo", Labels: map[string]string{"app": "solo"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: img}}},
	}
	g.Expect(k8s.Create(ctx, pod)).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "solo"), eventually, poll).Should(gomega.HaveLen(1))

	recreated := func(old types.UID) *corev1.Pod {
		t.Helper()
		var fresh corev1.Pod
		g.Eventually(func(g gomega.Gomega) {
			pods := readyPods(ctx, ns, "solo")(g)
			g.Expect(pods).To(gomega.HaveLen(1))
			g.Expect(pods[0].UID).NotTo(gomega.Equal(old))
			g.Expect(pods[0].Spec.Containers[0].Image).To(gomega.Equal(img), "recreated with the admitted image")
			fresh = pods[0]
		}, eventually, poll).Should(gomega.Succeed())
		// The saved spec was kept where only the operator writes, and is removed once the pod is back.
		g.Eventually(func(g gomega.Gomega) {
			var saved corev1.ConfigMapList
			g.Expect(k8s.List(ctx, &saved, client.InNamespace(fixityv1.OperatorNamespace))).To(gomega.Succeed())
			g.Expect(saved.Items).NotTo(gomega.ContainElement(gomega.HaveField("ObjectMeta.Name", "fixity-recreate-"+string(old))))
		}, eventually, poll).Should(gomega.Succeed())
		return &fresh
	}

	// ImageDigest: the node runs another image.
	g.Expect(runDigest(ctx, pod, other)).To(gomega.Succeed())
	fresh := recreated(pod.UID)
	g.Eventually(events(ctx, ns, "solo"), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventRecreated + ": ")))

	// SpecChange: the image is changed in place (to an image the policy admits); the pod comes
	// back with the image it was admitted with, not the changed one.
	before := fresh.DeepCopy()
	fresh.Spec.Containers[0].Image = other
	g.Expect(k8s.Patch(ctx, fresh, client.MergeFrom(before))).To(gomega.Succeed())
	recreated(fresh.UID)
	var saved corev1.ConfigMapList
	g.Expect(k8s.List(ctx, &saved, client.InNamespace(ns))).To(gomega.Succeed())
	for _, cm := range saved.Items {
		g.Expect(cm.Name).NotTo(gomega.HavePrefix("fixity-recreate-"), "no saved spec is ever written in the workload's namespace")
	}
}

// Too many drifted pods at once open the circuit breaker: nothing is replaced until the share
// falls, then remediation resumes.
func TestCircuitBreaker(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(50))
	pods := rollOut(t, ctx, ns, "web", 3, pushed(t, "shop/web"))
	other := pushed(t, "shop/other")
	// A budget that allows no eviction holds the first drifted pod while the second drifts, so
	// the breaker, not a race, decides what happens next.
	pdb := noDisruptions(t, ctx, ns, "web", 3)
	g.Expect(runDigest(ctx, &pods[0], other)).To(gomega.Succeed())
	g.Expect(runDigest(ctx, &pods[1], other)).To(gomega.Succeed())
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		remediationAllowed(metav1.ConditionFalse, fixityv1.TooManyDriftedReason),
		gomega.HaveField("Status.DriftedPods", int32(2)),
		gomega.HaveField("Status.MatchedPods", int32(3)),
	))
	g.Eventually(scrape, eventually, poll).Should(gomega.MatchRegexp(metrics.BreakerOpenName+`\{policy=%q\} 1\n`, ns))
	g.Expect(k8s.Delete(ctx, pdb)).To(gomega.Succeed())
	g.Consistently(func() bool { return gone(ctx, pods[0])() || gone(ctx, pods[1])() }, 3*time.Second, poll).
		Should(gomega.BeFalse(), "2 of 3 drifted is over 50%: nothing is replaced")

	// The share falls: one pod is back to what was admitted; the other is replaced.
	g.Expect(runDigest(ctx, &pods[0], pods[0].Spec.Containers[0].Image)).To(gomega.Succeed())
	g.Eventually(gone(ctx, pods[1]), eventually, poll).Should(gomega.BeTrue())
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(remediationAllowed(metav1.ConditionTrue, fixityv1.WithinBudgetReason))
	g.Expect(gone(ctx, pods[0])()).To(gomega.BeFalse())
	g.Expect(scrape(g)).To(gomega.MatchRegexp(metrics.BreakerOpenName+`\{policy=%q\} 0\n`, ns))
}

// Report mode and Audit only report.
func TestReportModeReplacesNothing(t *testing.T) {
	for name, edit := range map[string]func(*fixityv1.ImmutabilityPolicySpec){
		"action Report": func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.Action = fixityv1.DriftReport },
		"mode Audit":    func(s *fixityv1.ImmutabilityPolicySpec) { s.Mode = fixityv1.ModeAudit },
	} {
		t.Run(name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			ctx := context.Background()
			ns := enforcedNamespace(t, ctx, maxDrifted(100), edit)
			pods := rollOut(t, ctx, ns, "web", 1, pushed(t, "shop/web"))
			g.Expect(runDigest(ctx, &pods[0], pushed(t, "shop/other"))).To(gomega.Succeed())
			g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected + ": ")))
			g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.DriftedPods", int32(1)))
			g.Consistently(gone(ctx, pods[0]), 3*time.Second, poll).Should(gomega.BeFalse())
		})
	}
}

// A check left out of drift.checks finds nothing: the pod runs another digest undisturbed, and
// is replaced only for the check that is on.
func TestSwitchedOffCheckFindsNothing(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100), func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Runtime.EphemeralContainers = fixityv1.Allow
		s.Drift.Checks = []fixityv1.DriftCheck{fixityv1.CheckEphemeralContainers}
	})
	img := pushed(t, "shop/web")
	pods := rollOut(t, ctx, ns, "web", 1, img)
	canary := rollOut(t, ctx, ns, "canary", 1, img)[0]
	pod := pods[0]
	debug := func(pod *corev1.Pod) {
		t.Helper()
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(gomega.Succeed())
		pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: img}}}
		g.Expect(k8s.SubResource("ephemeralcontainers").Update(ctx, pod)).To(gomega.Succeed())
	}
	g.Expect(runDigest(ctx, &pod, pushed(t, "shop/other"))).To(gomega.Succeed())
	// The canary, changed after the pod, is replaced: the operator has looked at the pod.
	debug(&canary)
	g.Eventually(gone(ctx, canary), eventually, poll).Should(gomega.BeTrue())
	g.Consistently(gone(ctx, pods[0]), time.Second, poll).Should(gomega.BeFalse(), "ImageDigest is off")

	debug(&pod)
	g.Eventually(gone(ctx, pods[0]), eventually, poll).Should(gomega.BeTrue(), "EphemeralContainers is on")
	g.Expect(events(ctx, ns, pods[0].Name)(g)).To(gomega.And(
		gomega.ContainElement(gomega.ContainSubstring(fixityv1.EventDriftDetected+": [policy "+ns+"] "+string(fixityv1.CheckEphemeralContainers))),
		gomega.Not(gomega.ContainElement(gomega.ContainSubstring("ImageDigest"))),
	))
}

// A manager restart in the middle of replacing an owner's drifted pods replaces each of them once.
func TestRestartMidRemediationReplacesNothingTwice(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	pods := rollOut(t, ctx, ns, "web", 3, pushed(t, "shop/web"))
	other := pushed(t, "shop/other")
	for i := range pods {
		g.Expect(runDigest(ctx, &pods[i], other)).To(gomega.Succeed())
	}
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.ReplacedPods", gomega.BeNumerically(">=", 1)))
	mgr.Stop()
	g.Expect(mgr.Start(ctx)).To(gomega.Succeed())

	g.Eventually(func() bool { return gone(ctx, pods[0])() && gone(ctx, pods[1])() && gone(ctx, pods[2])() }, eventually, poll).Should(gomega.BeTrue())
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.HaveLen(3))
	// The count is published by the policy controller from the ledger: it gets to 3, and stays.
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.ReplacedPods", int64(3)))
	g.Consistently(policyOf(ctx, ns), 3*time.Second, poll).Should(gomega.HaveField("Status.ReplacedPods", int64(3)))
	original := []types.UID{pods[0].UID, pods[1].UID, pods[2].UID}
	for _, p := range readyPods(ctx, ns, "web")(g) {
		g.Expect(slices.Contains(original, p.UID)).To(gomega.BeFalse())
	}
	var rs appsv1.ReplicaSetList
	g.Expect(k8s.List(ctx, &rs, client.InNamespace(ns))).To(gomega.Succeed())
	g.Expect(rs.Items).To(gomega.HaveLen(1), "replacement is by eviction, not a new rollout")
}

// Runtimes report the digest of a multi-arch index or of the platform manifest they pulled,
// under whatever repository name; neither is drift, and neither is a pod still pulling.
func TestNoFalseDrift(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	index, platforms, err := reg.PushRandomIndex(ctx, "shop/multiarch", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	pods := rollOut(t, ctx, ns, "web", 2, index.String())
	canary := rollOut(t, ctx, ns, "canary", 1, index.String())[0]

	var platform string
	for _, d := range platforms {
		platform = d.DigestStr()
	}
	fresh := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pods[0]), fresh)).To(gomega.Succeed())
	before := fresh.DeepCopy()
	fresh.Status.ContainerStatuses[0].ImageID = "docker.io/library/renamed@" + platform
	g.Expect(k8s.Status().Patch(ctx, fresh, client.MergeFrom(before))).To(gomega.Succeed())

	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pods[1]), fresh)).To(gomega.Succeed())
	before = fresh.DeepCopy()
	fresh.Status.ContainerStatuses[0].ImageID = reg.Host() + "/shop/other@sha256:" + strings.Repeat("f", 64)
	fresh.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	g.Expect(k8s.Status().Patch(ctx, fresh, client.MergeFrom(before))).To(gomega.Succeed())

	// The canary, changed after both, really drifts and is replaced: the operator has looked
	// at both pods by then.
	g.Expect(runDigest(ctx, &canary, reg.Host()+"/shop/other@sha256:"+strings.Repeat("e", 64))).To(gomega.Succeed())
	g.Eventually(gone(ctx, canary), eventually, poll).Should(gomega.BeTrue())
	g.Consistently(func() bool { return gone(ctx, pods[0])() || gone(ctx, pods[1])() }, 2*time.Second, poll).Should(gomega.BeFalse())
	g.Expect(policyOf(ctx, ns)(g).Status.DriftedPods).To(gomega.Equal(int32(0)))
	for _, p := range pods {
		g.Expect(events(ctx, ns, p.Name)(g)).NotTo(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected)))
	}
}

// Replacing the key a policy trusts re-checks its running pods: signed with the old key, they
// no longer verify (Unverified). All of them drifting at once is what the circuit breaker is
// for: a key rotation gone wrong is reported, not turned into an outage.
func TestKeyReplacedRechecksRunningPods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	oldKey, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	newKey, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Verify = signedBy(oldKey) })
	d, err := reg.PushRandomImage(ctx, "shop/signed", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, d, oldKey)).To(gomega.Succeed())
	pods := rollOut(t, ctx, ns, "web", 2, d.String())

	p := policyOf(ctx, ns)(g)
	before := p.DeepCopy()
	p.Spec.Images.Verify = signedBy(newKey)
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(gomega.Succeed())

	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.DriftedPods", int32(2)),
		remediationAllowed(metav1.ConditionFalse, fixityv1.TooManyDriftedReason),
	))
	g.Expect(events(ctx, ns, pods[0].Name)(g)).To(gomega.ContainElement(gomega.And(
		gomega.ContainSubstring("Unverified"), gomega.ContainSubstring("is not signed by enough trusted authorities"))))
	g.Consistently(func() bool { return gone(ctx, pods[0])() || gone(ctx, pods[1])() }, 3*time.Second, poll).Should(gomega.BeFalse())
}
