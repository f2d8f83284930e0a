package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// nodePolicyYAML wraps spec lines in a NodeImmutabilityPolicy named name.
func nodePolicyYAML(name, spec string) string {
	return "apiVersion: fixity.dev/v1alpha1\nkind: NodeImmutabilityPolicy\nmetadata:\n  name: " + name + "\nspec:\n" + indent(spec)
}

// baselineYAML wraps spec lines in a NodeBaseline named name.
func baselineYAML(name, spec string) string {
	return "apiVersion: fixity.dev/v1alpha1\nkind: NodeBaseline\nmetadata:\n  name: " + name + "\nspec:\n" + indent(spec)
}

const validBaseline = "formatVersion: 1\nnodeUID: 5f0c2d7e-0000-4000-8000-000000000001\nproviderID: kwok://node-a\nnodeInfo: {kernelVersion: 6.1.0-28-cloud-amd64, osImage: Debian GNU/Linux 12 (bookworm), kubeletVersion: v1.37.2}\nrecordedAt: \"2026-12-01T10:00:00Z\"\n"

func TestNodePolicyCreateIsRejected(t *testing.T) {
	cases := []struct{ name, spec, field, msg string }{
		{"unknown mode", "mode: Strict", "spec.mode", `Unsupported value: "Strict"`},
		{"unknown check", "checks: [KernelVersion, Vibes]", "spec.checks[1]", `Unsupported value: "Vibes"`},
		{"duplicate check", "checks: [KernelVersion, KernelVersion]", "spec.checks[1]", "Duplicate value"},
		{"Labels without watchedLabels", "checks: [Labels]", "spec: Invalid value", "checks has Labels but watchedLabels is empty"},
		{"watched label not a key", "watchedLabels: [\"not a key\"]", "spec.watchedLabels[0]", "should match"},
		{"more than 32 watched labels", "watchedLabels: [" + listOf(33, "l%d") + "]", "spec.watchedLabels", "must have at most 32 items"},
		{"unknown action", "action: Delete", "spec.action", `Unsupported value: "Delete"`},
		{"negative maxUnavailable", "maxUnavailable: -1", "spec.maxUnavailable", "maxUnavailable must be a non-negative number or a percentage"},
		{"maxUnavailable not a percentage", "maxUnavailable: lots", "spec.maxUnavailable", "maxUnavailable must be a non-negative number or a percentage"},
		{"maxDriftedPercent above 100", "maxDriftedPercent: 101", "spec.maxDriftedPercent", "less than or equal to 100"},
		{"maxDriftedPercent negative", "maxDriftedPercent: -1", "spec.maxDriftedPercent", "greater than or equal to 0"},
		{"drainTimeout too short", "drainTimeout: 1s", "spec.drainTimeout", "drainTimeout must be at least 10s"},
		{"drainTimeout too long", "drainTimeout: 200h", "spec.drainTimeout", "drainTimeout must be at most 168h"},
		{"kubelet version not a version", "expect:\n  kubeletVersions: [\"1.37\"]", "spec.expect.kubeletVersions[0]", "should match"},
		{"osImageRegExp too long", "expect:\n  osImageRegExp: " + strings.Repeat("a", 1025), "spec.expect.osImageRegExp", "Too long"},
		{"unknown field", "selector: {}", "spec.selector", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			err := k8s.Create(context.Background(), fromYAML(t, nodePolicyYAML(uniqueName("nipol"), tc.spec)), client.FieldValidation("Strict"))
			g.Expect(err).To(gomega.HaveOccurred(), "the API server accepted:\n%s", tc.spec)
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.field), "the error must name the field")
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.msg))
		})
	}
}

func TestNodePolicyDefaults(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	name := uniqueName("nipol-defaults")
	createPolicy(t, ctx, nodePolicyYAML(name, "{}"))
	p := &fixityv1.NodeImmutabilityPolicy{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Mode).To(gomega.Equal(fixityv1.ModeEnforce))
	g.Expect(p.Spec.Checks).To(gomega.Equal(fixityv1.DefaultNodeChecks))
	g.Expect(p.Spec.Action).To(gomega.Equal(fixityv1.NodeReplace))
	g.Expect(p.Spec.MaxUnavailable.String()).To(gomega.Equal("1"))
	g.Expect(p.Spec.MaxDriftedPercent).To(gomega.HaveValue(gomega.BeEquivalentTo(20)))
	g.Expect(p.Spec.DrainTimeout.Duration.String()).To(gomega.Equal("30m0s"))

	for spec := range map[string]bool{
		"maxUnavailable: 25%\nchecks: [Labels, Taints, Reboot]\nwatchedLabels: [node.kubernetes.io/instance-type, team]":                        true,
		"mode: Audit\naction: Report\nnodeSelector: {matchLabels: {pool: gpu}}\nexpect: {kubeletVersions: [v1.37.2], osImageRegExp: '^Debian'}": true,
		"maxUnavailable: 0\ndrainTimeout: 10s\nmaxDriftedPercent: 0":                                                                            true,
	} {
		createPolicy(t, ctx, nodePolicyYAML(uniqueName("nipol-valid"), spec))
	}
}

func TestNodeBaselineCreateIsRejectedAndSpecImmutable(t *testing.T) {
	cases := []struct{ name, spec, field, msg string }{
		{"no nodeUID", strings.Replace(validBaseline, "nodeUID: 5f0c2d7e-0000-4000-8000-000000000001\n", "", 1), "spec.nodeUID", "Required value"},
		{"format version 0", strings.Replace(validBaseline, "formatVersion: 1", "formatVersion: 0", 1), "spec.formatVersion", "greater than or equal to 1"},
		{"kernel version too long", strings.Replace(validBaseline, "6.1.0-28-cloud-amd64", strings.Repeat("k", 257), 1), "spec.nodeInfo.kernelVersion", "Too long"},
		{"taint with unknown effect", validBaseline + "taints: [{key: dedicated, value: gpu, effect: Sometimes}]", "spec.taints[0].effect", `Unsupported value: "Sometimes"`},
		{"no recordedAt", strings.Replace(validBaseline, "recordedAt: \"2026-12-01T10:00:00Z\"\n", "", 1), "spec.recordedAt", "Required value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			err := k8s.Create(context.Background(), fromYAML(t, baselineYAML(uniqueName("nbl"), tc.spec)), client.FieldValidation("Strict"))
			g.Expect(err).To(gomega.HaveOccurred(), "the API server accepted:\n%s", tc.spec)
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.field))
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.msg))
		})
	}

	g := gomega.NewWithT(t)
	ctx := context.Background()
	obj := createPolicy(t, ctx, baselineYAML(uniqueName("nbl"), validBaseline))
	// A node, or anyone else, rewriting the record is what must be impossible.
	for field, value := range map[string]any{
		"nodeInfo":   map[string]any{"kernelVersion": "6.1.0-29-cloud-amd64"},
		"providerID": "kwok://another",
		"nodeUID":    "another",
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(fixityv1.GroupVersion.WithKind("NodeBaseline"))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), u)).To(gomega.Succeed())
		before := u.DeepCopy()
		g.Expect(unstructured.SetNestedField(u.Object, value, "spec", field)).To(gomega.Succeed())
		err := k8s.Patch(ctx, u, client.MergeFrom(before))
		g.Expect(err).To(gomega.HaveOccurred(), "changing spec.%s was accepted", field)
		g.Expect(err.Error()).To(gomega.ContainSubstring("spec is immutable"))
	}
}

func nodePolicyReady(ctx context.Context, name string) func(g gomega.Gomega) *metav1.Condition {
	return func(g gomega.Gomega) *metav1.Condition {
		p := &fixityv1.NodeImmutabilityPolicy{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
		g.Expect(p.Status.ObservedGeneration).To(gomega.Equal(p.Generation), "status is not for the current generation yet")
		c := meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReadyCondition)
		g.Expect(c).NotTo(gomega.BeNil())
		return c
	}
}

// What the schema cannot check is reported in Ready, naming the field; a valid policy is Ready.
func TestNodePolicyReadiness(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	for spec, field := range map[string]string{
		"expect:\n  osImageRegExp: '^Debian (unclosed'":                                "spec.expect.osImageRegExp",
		"nodeSelector: {matchExpressions: [{key: pool, operator: Near, values: [a]}]}": "spec.nodeSelector",
	} {
		name := uniqueName("nipol-bad")
		createPolicy(t, ctx, nodePolicyYAML(name, spec))
		g.Eventually(nodePolicyReady(ctx, name), eventually, poll).Should(gomega.And(
			gomega.HaveField("Status", metav1.ConditionFalse),
			gomega.HaveField("Reason", fixityv1.InvalidSpecReason),
			gomega.HaveField("Message", gomega.ContainSubstring(field))))
	}
	name := uniqueName("nipol-good")
	createPolicy(t, ctx, nodePolicyYAML(name, "nodeSelector: {matchLabels: {pool: none}}"))
	g.Eventually(nodePolicyReady(ctx, name), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionTrue), gomega.HaveField("Reason", fixityv1.ActiveReason)))
}
