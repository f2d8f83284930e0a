package e2e

import (
	"context"
	"testing"

	"github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/lockdown"
)

// reportOf reads namespace ns's Fixity Report.
func reportOf(ctx context.Context, ns string) func(g gomega.Gomega) *openreports.Report {
	return func(g gomega.Gomega) *openreports.Report {
		r := &openreports.Report{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: fixityv1.ReportName}, r)).To(gomega.Succeed())
		return r
	}
}

func clusterReport(ctx context.Context, name string) func(g gomega.Gomega) *openreports.ClusterReport {
	return func(g gomega.Gomega) *openreports.ClusterReport {
		r := &openreports.ClusterReport{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Name: name}, r)).To(gomega.Succeed())
		return r
	}
}

// result matches the result of policy's rule on the object named name.
func result(policy, rule, name string, outcome openreports.Result) gomega.OmegaMatcher {
	return gomega.And(
		gomega.HaveField("Source", fixityv1.ReportSource), gomega.HaveField("Policy", policy), gomega.HaveField("Rule", rule),
		gomega.HaveField("Result", outcome), gomega.HaveField("Subjects", gomega.ContainElement(gomega.HaveField("Name", name))))
}

func resultsOn(name string, results []openreports.ReportResult) []openreports.ReportResult {
	var out []openreports.ReportResult
	for _, r := range results {
		for _, s := range r.Subjects {
			if s.Name == name {
				out = append(out, r)
			}
		}
	}
	return out
}

// A namespace's Report has a result per pod, policy and rule, kept current: a drifted pod's
// result fails, passes again once it is fixed, and a deleted pod's results go.
func TestReportFollowsThePods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100), func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.Action = fixityv1.DriftReport })
	img := pushed(t, "shop/web")
	pod := rollOut(t, ctx, ns, "web", 1, img)[0]
	imageDigest := fixityv1.DriftRulePrefix + string(fixityv1.CheckImageDigest)

	g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Source", fixityv1.ReportSource),
		gomega.HaveField("ObjectMeta.Labels", gomega.HaveKeyWithValue(fixityv1.ReportLabel, "true")),
		gomega.HaveField("Results", gomega.ContainElements(
			result(ns, imageDigest, pod.Name, "pass"),
			result(ns, lockdown.RulePrivileged, pod.Name, "pass"),
		)),
	))

	// Drifted: the pod runs another image than the one admitted.
	g.Expect(runDigest(ctx, &pod, pushed(t, "shop/other"))).To(gomega.Succeed())
	g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Results", gomega.ContainElement(gomega.And(
			result(ns, imageDigest, pod.Name, "fail"), gomega.HaveField("Description", gomega.Not(gomega.BeEmpty()))))),
		gomega.HaveField("Summary.Fail", gomega.BeNumerically(">=", 1)),
	))

	// Fixed: it runs the admitted image again.
	g.Expect(runDigest(ctx, &pod, img)).To(gomega.Succeed())
	g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Results", gomega.ContainElement(result(ns, imageDigest, pod.Name, "pass"))),
		gomega.HaveField("Summary.Fail", 0),
	))

	// Deleted: its Deployment's next pod takes its place in the report, and its own results go.
	g.Expect(k8s.Delete(ctx, &pod)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		r := reportOf(ctx, ns)(g)
		g.Expect(resultsOn(pod.Name, r.Results)).To(gomega.BeEmpty())
		g.Expect(r.Results).To(gomega.ContainElement(gomega.And(
			gomega.HaveField("Rule", imageDigest), gomega.HaveField("Result", openreports.Result("pass")),
			gomega.HaveField("Subjects", gomega.ContainElement(gomega.HaveField("Name", gomega.HavePrefix("web-")))))), "the next pod's")
	}, eventually, poll).Should(gomega.Succeed())
}

// In Audit, what admission warned about is a warn result, and so is drift.
func TestReportWarnsInAudit(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Mode = fixityv1.ModeAudit
		s.Runtime.ReadOnlyRootFilesystem = fixityv1.Require
	})
	pod := rollOut(t, ctx, ns, "web", 1, pushed(t, "shop/web"))[0]
	g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Results", gomega.ContainElement(gomega.And(
			result(ns, lockdown.RuleReadOnlyRootFilesystem, pod.Name, "warn"),
			gomega.HaveField("Description", gomega.ContainSubstring("readOnlyRootFilesystem=true")),
			gomega.HaveField("Scored", false)))),
		gomega.HaveField("Summary.Warn", gomega.BeNumerically(">=", 1)),
		gomega.HaveField("Summary.Fail", 0),
	))
}

// Nodes and the access review are in ClusterReports: a node changed in place fails its policy's
// check, and a subject that can reach the kubelet through nodes/proxy fails the access review.
func TestClusterReports(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 1)
	p := nodePolicy(t, ctx, pool, 1, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Action = fixityv1.NodeReport })
	kernelVersion := fixityv1.DriftRulePrefix + string(fixityv1.CheckKernelVersion)
	g.Eventually(clusterReport(ctx, fixityv1.NodesReportName), eventually, poll).Should(
		gomega.HaveField("Results", gomega.ContainElement(result(p.Name, kernelVersion, nodes[0], "pass"))))

	setNodeInfo(t, ctx, nodes[0], func(i *corev1.NodeSystemInfo) { i.KernelVersion = "6.1.0-99-cloud-amd64" })
	g.Eventually(clusterReport(ctx, fixityv1.NodesReportName), eventually, poll).Should(
		gomega.HaveField("Results", gomega.ContainElement(gomega.And(
			result(p.Name, kernelVersion, nodes[0], "fail"), gomega.HaveField("Description", gomega.ContainSubstring("6.1.0-99-cloud-amd64"))))))

	user := uniqueName("proxy")
	allow(t, ctx, "", user, "kubelet-proxy", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}})
	g.Eventually(clusterReport(ctx, fixityv1.AccessReportName), eventually, poll).Should(
		gomega.HaveField("Results", gomega.ContainElement(gomega.And(
			result(fixityv1.AccessReviewPolicy, "nodes/proxy", user, "fail"),
			gomega.HaveField("Description", gomega.ContainSubstring("can reach the kubelet through nodes/proxy"))))))
}
