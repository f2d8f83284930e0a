package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// readyCondition returns the policy's Ready condition once it describes the current generation.
func readyCondition(ctx context.Context, name string) func(g gomega.Gomega) *metav1.Condition {
	return func(g gomega.Gomega) *metav1.Condition {
		p := &fixityv1.ImmutabilityPolicy{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
		g.Expect(p.Status.ObservedGeneration).To(gomega.Equal(p.Generation), "status is not for the current generation yet")
		c := meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReadyCondition)
		g.Expect(c).NotTo(gomega.BeNil())
		g.Expect(c.ObservedGeneration).To(gomega.Equal(p.Generation))
		return c
	}
}

func TestPolicyBecomesReadyAndFollowsGenerations(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	name := uniqueName("ready")
	createPolicy(t, ctx, policyYAML(name, isolated+"mode: Audit"))

	g.Eventually(readyCondition(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionTrue),
		gomega.HaveField("Reason", fixityv1.ActiveReason),
		gomega.HaveField("Message", gomega.ContainSubstring("Audit")),
	))

	// A spec change moves observedGeneration along, which is what kstatus and Argo CD wait for.
	p := &fixityv1.ImmutabilityPolicy{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
	before := p.DeepCopy()
	p.Spec.Mode = fixityv1.ModeEnforce
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(readyCondition(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionTrue),
		gomega.HaveField("Message", gomega.ContainSubstring("Enforce")),
	))
}

func TestPolicyThatCannotBeEnforcedIsNotReady(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	name := uniqueName("badregexp")
	spec := verifyWith("", strings.Replace(strings.Replace(keyless, "subject: ", "subjectRegExp: ", 1),
		"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "'^https://github.com/acme/(unclosed'", 1))
	createPolicy(t, ctx, policyYAML(name, isolated+spec))

	g.Eventually(readyCondition(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionFalse),
		gomega.HaveField("Reason", fixityv1.InvalidSpecReason),
		gomega.HaveField("Message", gomega.ContainSubstring("spec.images.verify.authorities[0].keyless.subjectRegExp")),
	))

	// A bad selector operator passes the schema but can never match: also not Ready.
	name = uniqueName("badselector")
	createPolicy(t, ctx, policyYAML(name, "match:\n  namespaceSelector: {matchLabels: {fixity.dev/test: isolated}}\n  podSelector: {matchExpressions: [{key: app, operator: Near, values: [web]}]}"))
	g.Eventually(readyCondition(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionFalse),
		gomega.HaveField("Message", gomega.ContainSubstring("spec.match.podSelector")),
	))
}

// What a platform engineer types: kubectl get and kubectl wait.
func TestPolicyWithKubectl(t *testing.T) {
	g := gomega.NewWithT(t)
	name := uniqueName("kubectl")
	createPolicy(t, context.Background(), policyYAML(name, isolated+"mode: Audit"))

	out, err := env.Kubectl("wait", "--for=condition=Ready", "--timeout=30s", "ipol/"+name).CombinedOutput()
	g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
	g.Expect(string(out)).To(gomega.ContainSubstring("condition met"))

	out, err = env.Kubectl("get", "ipol", name).CombinedOutput()
	g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	g.Expect(lines).To(gomega.HaveLen(2))
	g.Expect(strings.Fields(lines[0])).To(gomega.Equal([]string{"NAME", "MODE", "READY", "MATCHED", "DRIFTED", "AGE"}))
	g.Expect(strings.Fields(lines[1])[:3]).To(gomega.Equal([]string{name, "Audit", "True"}))

	out, err = env.Kubectl("get", "fixity", "-A").CombinedOutput()
	g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
	g.Expect(string(out)).To(gomega.ContainSubstring(name), "the fixity category lists policies")
}
