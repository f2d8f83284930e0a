package e2e

import (
	"context"
	"encoding/base64"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// config.mutable: Replace (the default). A Deployment of 10 replicas uses a ConfigMap (volume)
// and a Secret (envFrom). A label-only edit is not drift; a data edit drifts all 10, which the
// circuit breaker (50%) lets through because a config change is a recorded fact, and they are
// replaced one at a time within the PodDisruptionBudget. A deleted Secret is reported, not
// replaced.
func TestConfigChangeReplacesPods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)
	img := pushed(t, "shop/web")
	cfg := configMap(t, ctx, ns, "web-config", "info-level-e2e-value")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-secret"}, Data: map[string][]byte{"TOKEN": []byte("token-e2e-value")}}
	g.Expect(k8s.Create(ctx, secret)).To(gomega.Succeed())
	pods := rollOut(t, ctx, ns, "web", 10, img, usesConfigMap(cfg.Name), func(dep *appsv1.Deployment) {
		dep.Spec.Template.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name}}}}
	})
	for _, p := range pods {
		g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.ConfigAnnotation, gomega.And(
			gomega.ContainSubstring(`"ConfigMap/web-config":`), gomega.ContainSubstring(`"Secret/web-secret":`))), "each pod records the data it was admitted with")
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}
	g.Expect(k8s.Create(ctx, pdb)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pdb), pdb)).To(gomega.Succeed())
		g.Expect(pdb.Status.CurrentHealthy).To(gomega.Equal(int32(10)))
	}, eventually, poll).Should(gomega.Succeed())

	// A label-only edit: the operator has seen every pod (10 matched, none drifted) and, after
	// a policy edit makes it look at all of them again, still replaces none.
	before := cfg.DeepCopy()
	cfg.Labels = map[string]string{"team": "web"}
	g.Expect(k8s.Patch(ctx, cfg, client.MergeFrom(before))).To(gomega.Succeed())
	p := policyOf(ctx, ns)(g)
	edited := p.DeepCopy()
	edited.Spec.Drift.MaxDriftedPercent = ptr.To[int32](40)
	g.Expect(k8s.Patch(ctx, edited, client.MergeFrom(p))).To(gomega.Succeed())
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.ObservedGeneration", edited.Generation),
		gomega.HaveField("Status.MatchedPods", int32(10)),
		gomega.HaveField("Status.DriftedPods", int32(0)),
	))
	g.Consistently(func() bool {
		for _, pod := range pods {
			if gone(ctx, pod)() {
				return true
			}
		}
		return false
	}, 3*time.Second, poll).Should(gomega.BeFalse(), "a label-only change replaced a pod")

	// A data edit: all 10 are replaced, never more than one unavailable at once.
	fewest := fewestReady(ctx, ns, "web")
	editData(t, ctx, cfg, "debug-level-e2e-value")
	old := map[types.UID]bool{}
	for _, pod := range pods {
		old[pod.UID] = true
	}
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "web")(g)
		for _, pod := range ready {
			g.Expect(old).NotTo(gomega.HaveKey(pod.UID), "pod %s still runs the old config", pod.Name)
		}
		g.Expect(ready).To(gomega.HaveLen(10))
	}, 3*eventually, poll).Should(gomega.Succeed())
	g.Expect(fewest()).To(gomega.BeNumerically(">=", 9), "more than one pod was unavailable at once")
	g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring(fixityv1.EventDriftDetected + ": [policy " + ns + "] " + string(fixityv1.CheckConfigChange) + `: ConfigMap "web-config" changed`)))
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.ReplacedPods", int64(10)),
		gomega.HaveField("Status.DriftedPods", int32(0)),
	))

	// A deleted Secret: every pod is reported drifted, and none is replaced (a replacement
	// could not start without it).
	pods = readyPods(ctx, ns, "web")(g)
	g.Expect(k8s.Delete(ctx, secret)).To(gomega.Succeed())
	g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring(`Secret "web-secret" was deleted after the pod was admitted (reported, not replaced`)))
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.DriftedPods", int32(10)))
	g.Consistently(gone(ctx, pods[0]), 3*time.Second, poll).Should(gomega.BeFalse(), "a pod whose Secret was deleted was replaced")

	// The operator hashed the data and never logged it.
	log, err := os.ReadFile(mgr.Log)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(string(log)).To(gomega.And(gomega.ContainSubstring(ns), gomega.Not(gomega.ContainSubstring("token-e2e-value")),
		gomega.Not(gomega.ContainSubstring(base64.StdEncoding.EncodeToString([]byte("token-e2e-value")))),
		gomega.Not(gomega.ContainSubstring("info-level-e2e-value")), gomega.Not(gomega.ContainSubstring("debug-level-e2e-value"))))
}

// A bare pod whose ConfigMap (env valueFrom) changed is recreated, and records the new data; under
// drift.action Report a changed Secret (projected volume) is reported and the pod kept.
func TestConfigChangeBarePodAndReport(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	img := pushed(t, "shop/solo")
	cfg := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo-config"}, Data: map[string]string{"level": "info"}}
	g.Expect(k8s.Create(ctx, cfg)).To(gomega.Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo", Labels: map[string]string{"app": "solo"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: img, Env: []corev1.EnvVar{{Name: "LEVEL",
			ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: cfg.Name}, Key: "level"}}}}}}},
	}
	g.Expect(k8s.Create(ctx, pod)).To(gomega.Succeed())
	var first corev1.Pod
	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, ns, "solo")(g)
		g.Expect(pods).To(gomega.HaveLen(1))
		first = pods[0]
	}, eventually, poll).Should(gomega.Succeed())
	recorded := first.Annotations[fixityv1.ConfigAnnotation]
	g.Expect(recorded).To(gomega.ContainSubstring(`"ConfigMap/solo-config":`))

	before := cfg.DeepCopy()
	cfg.Data["level"] = "debug"
	g.Expect(k8s.Patch(ctx, cfg, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, ns, "solo")(g)
		g.Expect(pods).To(gomega.HaveLen(1))
		g.Expect(pods[0].UID).NotTo(gomega.Equal(first.UID))
		g.Expect(pods[0].Annotations[fixityv1.ConfigAnnotation]).To(gomega.And(
			gomega.ContainSubstring(`"ConfigMap/solo-config":`), gomega.Not(gomega.Equal(recorded))), "recreated with a record of the new data")
	}, eventually, poll).Should(gomega.Succeed())
	g.Eventually(events(ctx, ns, "solo"), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventRecreated + ": ")))

	// Report: the pod is reported drifted and kept.
	report := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.Action = fixityv1.DriftReport })
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: report, Name: "creds"}, Data: map[string][]byte{"t": []byte("a")}}
	g.Expect(k8s.Create(ctx, secret)).To(gomega.Succeed())
	kept := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: report, Name: "kept", Labels: map[string]string{"app": "kept"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: img, VolumeMounts: []corev1.VolumeMount{{Name: "creds", MountPath: "/creds"}}}},
			Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name}}}}}}}},
		},
	}
	g.Expect(k8s.Create(ctx, kept)).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, report, "kept"), eventually, poll).Should(gomega.HaveLen(1))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(kept), kept)).To(gomega.Succeed())
	g.Expect(kept.Annotations[fixityv1.ConfigAnnotation]).To(gomega.ContainSubstring(`"Secret/creds":`))
	sb := secret.DeepCopy()
	secret.Data["t"] = []byte("b")
	g.Expect(k8s.Patch(ctx, secret, client.MergeFrom(sb))).To(gomega.Succeed())
	g.Eventually(events(ctx, report, "kept"), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring(string(fixityv1.CheckConfigChange) + `: Secret "creds" changed`)))
	g.Eventually(policyOf(ctx, report), eventually, poll).Should(gomega.HaveField("Status.DriftedPods", int32(1)))
	g.Consistently(gone(ctx, *kept), 3*time.Second, poll).Should(gomega.BeFalse(), "Report replaced the pod")
}

// usesConfigMap mounts ConfigMap name into a Deployment's pods.
func usesConfigMap(name string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		spec := &d.Spec.Template.Spec
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}}}})
		spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: "/etc/app"})
	}
}

// configMap creates ConfigMap ns/name with one key, level, set to value.
func configMap(t *testing.T, ctx context.Context, ns, name, value string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{"level": value}}
	gomega.NewWithT(t).Expect(k8s.Create(ctx, cm)).To(gomega.Succeed())
	return cm
}

// editData sets the ConfigMap's key level to value.
func editData(t *testing.T, ctx context.Context, cm *corev1.ConfigMap, value string) {
	t.Helper()
	before := cm.DeepCopy()
	cm.Data["level"] = value
	gomega.NewWithT(t).Expect(k8s.Patch(ctx, cm, client.MergeFrom(before))).To(gomega.Succeed())
}

// allGone reports how many of pods no longer exist.
func allGone(ctx context.Context, pods []corev1.Pod) func() int {
	return func() int {
		n := 0
		for _, p := range pods {
			if gone(ctx, p)() {
				n++
			}
		}
		return n
	}
}

// A config change whose replacements are slow to become Ready, with the manager restarted midway:
// never fewer than replicas − 1 Ready, each pod replaced once, and the restarted manager reads the
// same key, so the new pods' records still match and nothing is replaced again.
func TestConfigChangeSlowReplacementAcrossARestart(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)
	cm := configMap(t, ctx, ns, "slow-config", "info")
	pods := rollOut(t, ctx, ns, "slow", 3, pushed(t, "shop/slow"), usesConfigMap(cm.Name), func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{"readyDelay": "3s"} // hack/kwok/stages.yaml
	})

	least := fewestReady(ctx, ns, "slow")
	editData(t, ctx, cm, "debug")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.ReplacedPods", gomega.BeNumerically(">=", 1)))
	mgr.Stop()
	g.Expect(mgr.Start(ctx)).To(gomega.Succeed())

	g.Eventually(func(g gomega.Gomega) {
		g.Expect(allGone(ctx, pods)()).To(gomega.Equal(3))
		g.Expect(readyPods(ctx, ns, "slow")(g)).To(gomega.HaveLen(3))
	}, 2*eventually, poll).Should(gomega.Succeed())
	g.Expect(least()).To(gomega.BeNumerically(">=", 2), "never fewer than replicas − 1 Ready, before, during and after the restart")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.ReplacedPods", int64(3)),
		gomega.HaveField("Status.MatchedPods", int32(3)),
		gomega.HaveField("Status.DriftedPods", int32(0)),
	))
	fresh := readyPods(ctx, ns, "slow")(g)
	g.Consistently(allGone(ctx, fresh), 3*time.Second, poll).Should(gomega.Equal(0), "a pod admitted with the new data was replaced again")
}

// A config change whose replacement never comes (its node no longer takes pods): one pod goes,
// the owner is reported stuck and nothing more of it is replaced; once the replacement can run,
// the rest follow. Under mode Audit the same change is reported and replaces nothing.
func TestConfigChangeReplacementThatNeverComesAndAudit(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)
	img := pushed(t, "shop/stuck")
	pool, nodes := nodePool(t, ctx, 1)
	cm := configMap(t, ctx, ns, "stuck-config", "info")
	pods := rollOut(t, ctx, ns, "stuck", 3, img, usesConfigMap(cm.Name), onPool(pool))
	const closed = "e2e.fixity.dev/closed"
	editNode(t, ctx, nodes[0], func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: closed, Effect: corev1.TaintEffectNoSchedule})
	})

	editData(t, ctx, cm, "debug")
	g.Eventually(allGone(ctx, pods), eventually, poll).Should(gomega.Equal(1))
	g.Eventually(policyOf(ctx, ns), replacementTimeout+eventually, poll).Should(gomega.And(
		replacementsProceeding(metav1.ConditionFalse, fixityv1.ReplacementStuckReason),
		gomega.HaveField("Status.HeldPods", int32(2)),
		gomega.HaveField("Status.ReplacedPods", int64(1)),
	))
	g.Consistently(allGone(ctx, pods), 3*time.Second, poll).Should(gomega.Equal(1), "the owner is stuck: nothing more is evicted")
	g.Expect(readyPods(ctx, ns, "stuck")(g)).To(gomega.HaveLen(2))

	editNode(t, ctx, nodes[0], func(n *corev1.Node) {
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == closed })
	})
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(allGone(ctx, pods)()).To(gomega.Equal(3))
		g.Expect(readyPods(ctx, ns, "stuck")(g)).To(gomega.HaveLen(3))
	}, 2*eventually, poll).Should(gomega.Succeed(), "the replacement ran: the rest are replaced")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.ReplacedPods", int64(3)),
		gomega.HaveField("Status.HeldPods", int32(0)),
		replacementsProceeding(metav1.ConditionTrue, fixityv1.ProceedingReason),
	))

	// Audit: reported, kept.
	audit := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Mode = fixityv1.ModeAudit })
	acm := configMap(t, ctx, audit, "audit-config", "info")
	watched := rollOut(t, ctx, audit, "watched", 1, img, usesConfigMap(acm.Name))
	editData(t, ctx, acm, "debug")
	g.Eventually(events(ctx, audit, watched[0].Name), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring(string(fixityv1.CheckConfigChange) + `: ConfigMap "audit-config" changed`)))
	g.Eventually(policyOf(ctx, audit), eventually, poll).Should(gomega.HaveField("Status.DriftedPods", int32(1)))
	g.Consistently(gone(ctx, watched[0]), 3*time.Second, poll).Should(gomega.BeFalse(), "Audit replaced the pod")
}

// A config change whose replacement another policy would deny (it says config.mutable: Deny, and
// the ConfigMap is mutable): the pods are kept and reported, with what to fix; the fix the message
// names, a new immutable ConfigMap rolled out, leaves nothing drifted.
func TestConfigChangeReplacementThatWouldBeDeniedKeepsThePods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)
	cm := configMap(t, ctx, ns, "app-config", "info")
	pods := rollOut(t, ctx, ns, "app", 3, pushed(t, "shop/app"), usesConfigMap(cm.Name))
	strict := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-strict"},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match:  fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": ns}}},
			Config: fixityv1.ConfigRules{Mutable: fixityv1.ConfigDeny},
		},
	}
	g.Expect(k8s.Create(ctx, strict)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), strict) })
	// Admitted pods are not judged again by every rule of a new policy (only its image rules).
	g.Eventually(policyOf(ctx, strict.Name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.MatchedPods", int32(3)), gomega.HaveField("Status.DriftedPods", int32(0))))

	editData(t, ctx, cm, "debug")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.DriftedPods", int32(3)),
		gomega.HaveField("Status.HeldPods", int32(3)),
		replacementsProceeding(metav1.ConditionFalse, fixityv1.ReplacementWouldBeDeniedReason),
	))
	g.Eventually(events(ctx, ns, pods[0].Name), eventually, poll).Should(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventReplacementWouldBeDenied+": "),
		gomega.ContainSubstring(`[policy `+strict.Name+`] ConfigMap "app-config" (volume "config") is mutable, and spec.config.mutable is Deny`),
		gomega.ContainSubstring("immutable: true"),
	)))
	g.Consistently(allGone(ctx, pods), 3*time.Second, poll).Should(gomega.Equal(0), "nothing is evicted: its replacement would be denied")

	// The fix: a new immutable ConfigMap, rolled out.
	fixed := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config-v2"}, Data: map[string]string{"level": "debug"}, Immutable: ptr.To(true)}
	g.Expect(k8s.Create(ctx, fixed)).To(gomega.Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, dep)).To(gomega.Succeed())
	before := dep.DeepCopy()
	dep.Spec.Template.Spec.Volumes[0].ConfigMap.Name = fixed.Name
	g.Expect(k8s.Patch(ctx, dep, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "app")(g)
		g.Expect(ready).To(gomega.HaveLen(3))
		for _, p := range ready {
			g.Expect(p.Spec.Volumes[0].ConfigMap.Name).To(gomega.Equal(fixed.Name))
		}
	}, eventually, poll).Should(gomega.Succeed())
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.DriftedPods", int32(0)),
		gomega.HaveField("Status.HeldPods", int32(0)),
		replacementsProceeding(metav1.ConditionTrue, fixityv1.ProceedingReason),
	))
}

// Pods admitted before their policy said Replace (here: before any policy selected their
// namespace) carry no record and are never replaced for a config change; a pod admitted since,
// using the same ConfigMap, is.
func TestConfigChangeSparesPodsWithoutARecord(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := uniqueName("unrecorded")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	img := pushed(t, "shop/older")
	cm := configMap(t, ctx, ns, "shared-config", "info")
	older := rollOut(t, ctx, ns, "older", 1, img, usesConfigMap(cm.Name))
	g.Expect(older[0].Annotations).NotTo(gomega.HaveKey(fixityv1.ConfigAnnotation), "admitted under no policy")

	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match: fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": ns}}},
			Drift: fixityv1.DriftRules{MaxDriftedPercent: ptr.To[int32](100)},
		},
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	labelIntoPolicy(t, ctx, ns, ns)
	newer := rollOut(t, ctx, ns, "newer", 1, img, usesConfigMap(cm.Name))
	g.Expect(newer[0].Annotations).To(gomega.HaveKey(fixityv1.ConfigAnnotation))
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.MatchedPods", int32(2)), gomega.HaveField("Status.DriftedPods", int32(0))))

	editData(t, ctx, cm, "debug")
	g.Eventually(gone(ctx, newer[0]), eventually, poll).Should(gomega.BeTrue(), "the pod with a record is replaced")
	g.Consistently(gone(ctx, older[0]), 3*time.Second, poll).Should(gomega.BeFalse(), "a pod without a record was replaced for a config change")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.DriftedPods", int32(0)), gomega.HaveField("Status.ReplacedPods", int64(1))), "the pod without a record is not counted drifted")
}
