package integration

import (
	"context"
	"testing"

	"github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/fixity-dev/fixity/internal/policy"
)

const digestImage = "registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: digestImage}}},
	}
}

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: digestImage}}},
			},
		},
	}
}

// A policy the operator cannot evaluate must not turn into an allow: pods, workloads and exec in
// the namespaces it selects are denied with a message naming the policy and the field, while
// every other namespace carries on.
func TestWebhooksFailClosedOnAPolicyTheyCannotEvaluate(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	team := uniqueName("team")
	ns := createNamespace(t, ctx, map[string]string{"team": team})
	other := createNamespace(t, ctx, nil)
	g.Expect(k8s.Create(ctx, pod(ns, "before"))).To(gomega.Succeed(), "no policy yet")

	name := uniqueName("unevaluable")
	spec := "match:\n  namespaceSelector: {matchLabels: {team: " + team + "}}\n  podSelector: {matchExpressions: [{key: app, operator: Near, values: [web]}]}"
	policy := fromYAML(t, policyYAML(name, spec))
	g.Expect(k8s.Create(ctx, policy)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, policy) })

	// The webhooks read policies from the operator's cache; wait until it has this one.
	g.Eventually(func() error { return k8s.Create(ctx, pod(ns, uniqueName("probe"))) }, eventually, poll).
		Should(gomega.MatchError(gomega.And(
			gomega.ContainSubstring("mpods.fixity.dev"),
			gomega.ContainSubstring("policy "+name),
			gomega.ContainSubstring("spec.match.podSelector"),
		)))

	err := k8s.Create(ctx, deployment(ns, "web"))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring("workloads.fixity.dev"),
		gomega.ContainSubstring("spec.match.podSelector"),
	)), "the Deployment must fail at apply time, not later on its pods")

	out, err := env.Kubectl("exec", "-n", ns, "before", "--", "true").CombinedOutput()
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(string(out)).To(gomega.And(
		gomega.ContainSubstring("podaccess.fixity.dev"),
		gomega.ContainSubstring("spec.match.podSelector"),
	))

	// Other namespaces are unaffected, and so is the control plane.
	g.Expect(k8s.Create(ctx, pod(other, "web"))).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, deployment(other, "web"))).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, pod("kube-system", uniqueName("system")))).To(gomega.Succeed())

	// Fixing the policy (here: deleting it) lets the namespace deploy again.
	g.Expect(k8s.Delete(ctx, policy)).To(gomega.Succeed())
	g.Eventually(func() error { return k8s.Create(ctx, deployment(ns, uniqueName("web"))) }, eventually, poll).Should(gomega.Succeed())
}

// The webhook configurations exempt the control plane and the operator at the API server, so
// those namespaces keep working while the operator is down (failurePolicy is Fail). The list must
// be the one the policy matcher uses.
func TestWebhookConfigurationsExemptTheControlPlane(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()

	type hook struct {
		failurePolicy *admissionregistrationv1.FailurePolicyType
		selector      *metav1.LabelSelector
	}
	hooks := map[string]hook{}
	var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
	g.Expect(k8s.List(ctx, &vwcs)).To(gomega.Succeed())
	for _, c := range vwcs.Items {
		for _, w := range c.Webhooks {
			hooks[w.Name] = hook{w.FailurePolicy, w.NamespaceSelector}
		}
	}
	var mwcs admissionregistrationv1.MutatingWebhookConfigurationList
	g.Expect(k8s.List(ctx, &mwcs)).To(gomega.Succeed())
	for _, c := range mwcs.Items {
		for _, w := range c.Webhooks {
			hooks[w.Name] = hook{w.FailurePolicy, w.NamespaceSelector}
		}
	}
	names := []string{"mpods.fixity.dev", "pods.fixity.dev", "workloads.fixity.dev", "podaccess.fixity.dev",
		"maccessgrants.fixity.dev", "accessgrants.fixity.dev", "maccessapprovals.fixity.dev", "accessapprovals.fixity.dev",
		"podmetadata.fixity.dev", "nodeproxy.fixity.dev"}
	// Policies are cluster-scoped, and a policy is never blocked by the operator being down: the
	// policy controller reports the same problems as the webhook.
	g.Expect(hooks).To(gomega.HaveKey("immutabilitypolicies.fixity.dev"))
	g.Expect(hooks["immutabilitypolicies.fixity.dev"].failurePolicy).To(gomega.HaveValue(gomega.Equal(admissionregistrationv1.Ignore)))
	g.Expect(hooks).To(gomega.HaveLen(len(names) + 1))
	for _, name := range names {
		h, ok := hooks[name]
		g.Expect(ok).To(gomega.BeTrue(), "webhook %s is not registered", name)
		g.Expect(h.failurePolicy).To(gomega.HaveValue(gomega.Equal(admissionregistrationv1.Fail)), name)
		g.Expect(h.selector).NotTo(gomega.BeNil(), name)
		g.Expect(h.selector.MatchExpressions).To(gomega.ConsistOf(metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: policy.AlwaysExcludedNamespaces(""),
		}), name)
	}
}
