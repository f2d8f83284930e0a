package e2e

import (
	"context"
	"encoding/base64"
	"os"
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
	cfg := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-config"}, Data: map[string]string{"level": "info-level-e2e-value"}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-secret"}, Data: map[string][]byte{"TOKEN": []byte("token-e2e-value")}}
	g.Expect(k8s.Create(ctx, cfg)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, secret)).To(gomega.Succeed())
	pods := rollOut(t, ctx, ns, "web", 10, img, func(dep *appsv1.Deployment) {
		spec := &dep.Spec.Template.Spec
		spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cfg.Name}}}}}
		spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/etc/web"}}
		spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret.Name}}}}
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
	before = cfg.DeepCopy()
	cfg.Data["level"] = "debug-level-e2e-value"
	g.Expect(k8s.Patch(ctx, cfg, client.MergeFrom(before))).To(gomega.Succeed())
	old := map[types.UID]bool{}
	for _, pod := range pods {
		old[pod.UID] = true
	}
	fewest := 10 // the fewest Ready pods seen on any poll
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "web")(g)
		fewest = min(fewest, len(ready))
		for _, pod := range ready {
			g.Expect(old).NotTo(gomega.HaveKey(pod.UID), "pod %s still runs the old config", pod.Name)
		}
		g.Expect(ready).To(gomega.HaveLen(10))
	}, 3*eventually, poll).Should(gomega.Succeed())
	g.Expect(fewest).To(gomega.BeNumerically(">=", 9), "more than one pod was unavailable at once")
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
