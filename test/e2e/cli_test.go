package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/test/registry"
	"github.com/fixity-dev/fixity/webhooks/accessgrant"
)

// fixityCLI runs the built kubectl-fixity with kubeconfig (none: offline) and returns its
// stdout and stderr together, and its exit code.
func fixityCLI(t *testing.T, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	if kubeconfig != "" {
		args = append([]string{"--kubeconfig", kubeconfig}, args...)
	}
	cmd := exec.Command(pluginBin, args...)
	// Offline commands must not need a cluster: no kubeconfig to fall back on.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(t.TempDir(), "none"), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("running kubectl-fixity %v: %v", args, err)
	return "", -1
}

// writeYAML writes objs as one multi-document YAML file and returns its path.
func writeYAML(t *testing.T, name string, objs ...any) string {
	t.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// asApplied is obj as a user's file would hold it: without what the API server wrote.
func asApplied[T client.Object](obj T) T {
	obj = obj.DeepCopyObject().(T)
	obj.SetResourceVersion("")
	obj.SetUID("")
	obj.SetGeneration(0)
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetManagedFields(nil)
	return obj
}

// `kubectl fixity verify` resolves a tag, verifies its signature (cosign v3 bundle) offline,
// and prints the digest and the authority; an unsigned image and an invalid policy file fail
// with the webhook's message and a message naming the field.
func TestCLIVerify(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	signed, err := reg.PushRandomImage(ctx, "cli/signed", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.SignBundle(ctx, signed, key)).To(gomega.Succeed())
	unsigned, err := reg.PushRandomImage(ctx, "cli/unsigned", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())

	p := &fixityv1.ImmutabilityPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: fixityv1.GroupVersion.String(), Kind: "ImmutabilityPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "production"},
		Spec:       fixityv1.ImmutabilityPolicySpec{Images: fixityv1.ImageRules{Verify: signedBy(key)}},
	}
	file := writeYAML(t, "policy.yaml", p)

	out, code := fixityCLI(t, "", "verify", reg.Host()+"/cli/signed:v1", "--policy", file)
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.ContainSubstring("digest:    " + signed.String()))
	g.Expect(out).To(gomega.ContainSubstring("signed by: production/release (bundle)"))

	out, code = fixityCLI(t, "", "verify", reg.Host()+"/cli/unsigned:v1", "--policy", file)
	g.Expect(code).To(gomega.Equal(1), out)
	g.Expect(out).To(gomega.ContainSubstring("verdict:   denied"))
	g.Expect(out).To(gomega.ContainSubstring(`[policy production] container "image": image "` + unsigned.String() + `"`))
	g.Expect(out).To(gomega.ContainSubstring("is not signed by enough trusted authorities"))

	// The CRD's schema holds offline: a value it does not allow names the field.
	bad := p.DeepCopy()
	bad.Spec.Images.Digest = "Sometimes"
	out, code = fixityCLI(t, "", "verify", signed.String(), "--policy", writeYAML(t, "bad.yaml", bad))
	g.Expect(code).To(gomega.Equal(2), out)
	g.Expect(out).To(gomega.And(gomega.ContainSubstring("ImmutabilityPolicy production"), gomega.ContainSubstring("spec.images.digest"),
		gomega.ContainSubstring(`Unsupported value: "Sometimes"`)))
}

// cliResult is one result of `kubectl fixity test -o json`.
type cliResult struct {
	Kind, Namespace, Name string
	Allowed               bool
	Denials, Warnings     []string
}

// `kubectl fixity test` gives, offline, exactly the denials and warnings the cluster's webhooks
// give to `kubectl apply` of the same manifests under the same policies: an unsigned
// Deployment, a privileged Pod, and a signed Pod that an Audit policy warns about.
func TestCLITestGivesTheWebhooksAnswers(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	signed, err := reg.PushRandomImage(ctx, "cli/app", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, signed, key)).To(gomega.Succeed())
	_, err = reg.PushRandomImage(ctx, "cli/other", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Verify = signedBy(key) })
	audit := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-audit"},
		Spec: fixityv1.ImmutabilityPolicySpec{Mode: fixityv1.ModeAudit,
			Match:   fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
			Runtime: fixityv1.RuntimeRules{ReadOnlyRootFilesystem: fixityv1.Require}},
	}
	g.Expect(k8s.Create(ctx, audit)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), audit) })

	// The policies and the namespace as the cluster has them, in files.
	var policies []any
	for _, name := range []string{ns, audit.Name} {
		p := &fixityv1.ImmutabilityPolicy{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
		p = asApplied(p)
		p.Status = fixityv1.ImmutabilityPolicyStatus{}
		p.APIVersion, p.Kind = fixityv1.GroupVersion.String(), "ImmutabilityPolicy"
		policies = append(policies, p)
	}
	namespace := &corev1.Namespace{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace)).To(gomega.Succeed())
	namespace = asApplied(namespace)
	namespace.Status = corev1.NamespaceStatus{}
	namespace.Spec = corev1.NamespaceSpec{}
	namespace.APIVersion, namespace.Kind = "v1", "Namespace"
	policyFile := writeYAML(t, "policies.yaml", append(policies, namespace)...)

	dep := deployment(ns, "cli-web", 1)
	dep.Spec.Template.Spec.Containers[0].Image = reg.Host() + "/cli/other:v1"
	dep.APIVersion, dep.Kind = "apps/v1", "Deployment"
	privileged := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cli-root"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "root", Image: signed.String(),
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
	}
	tagged := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cli-app"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: reg.Host() + "/cli/app:v1"}}},
	}
	subjects := []client.Object{dep, privileged, tagged}

	manifests := writeYAML(t, "manifests.yaml", dep, privileged, tagged)
	out, code := fixityCLI(t, "", "test", "-f", manifests, "--policy", policyFile, "-o", "json")
	g.Expect(code).To(gomega.Equal(1), out)
	var report struct{ Results []cliResult }
	g.Expect(json.Unmarshal([]byte(out), &report)).To(gomega.Succeed(), out)
	g.Expect(report.Results).To(gomega.HaveLen(len(subjects)))

	for i, obj := range subjects {
		r := report.Results[i]
		g.Expect(r.Name).To(gomega.Equal(obj.GetName()))
		// What the cluster's webhooks say to kubectl apply of the same object.
		live, err := kubectlAdmin(writeYAML(t, obj.GetName()+".yaml", obj))
		g.Expect(r.Allowed).To(gomega.Equal(err == nil), "%s: offline %+v, cluster: %s", obj.GetName(), r, live)
		for _, line := range append(r.Denials, r.Warnings...) {
			g.Expect(live).To(gomega.ContainSubstring(line), "%s", obj.GetName())
		}
		g.Expect(strings.Count(live, "[policy ")).To(gomega.Equal(len(r.Denials)+len(r.Warnings)), "%s: offline %+v, cluster: %s", obj.GetName(), r, live)
	}
	// And what they are: the unsigned image named with the policy; the privileged container;
	// the tag resolved to the signed digest and allowed, with the Audit policy's warning.
	g.Expect(report.Results[0].Denials).To(gomega.ContainElement(gomega.ContainSubstring(`container "web": image "` + reg.Host() + `/cli/other@sha256:`)))
	g.Expect(report.Results[1].Denials).To(gomega.ContainElement(gomega.ContainSubstring(`container "root"`)))
	g.Expect(report.Results[2]).To(gomega.And(gomega.HaveField("Allowed", true),
		gomega.HaveField("Warnings", gomega.ContainElement(gomega.ContainSubstring("[policy "+audit.Name+"]")))))

	// The plain output lists the same lines; everything allowed exits 0.
	out, code = fixityCLI(t, "", "test", "-f", writeYAML(t, "ok.yaml", tagged), "--policy", policyFile)
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.ContainSubstring("Pod " + ns + "/cli-app: allowed"))
	g.Expect(out).To(gomega.ContainSubstring("Warning: audit: [policy " + audit.Name + "]"))

	// A pod no policy covers (the control plane's namespace is always exempt) is said to be
	// not covered, not allowed; and -n naming another namespace than the object's is refused,
	// as kubectl apply refuses it.
	exempt := tagged.DeepCopy()
	exempt.Namespace = metav1.NamespaceSystem
	out, code = fixityCLI(t, "", "test", "-f", writeYAML(t, "exempt.yaml", exempt), "--policy", policyFile)
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.ContainSubstring("Pod kube-system/cli-app: not covered by any policy"))
	out, code = fixityCLI(t, "", "test", "-f", writeYAML(t, "ok.yaml", tagged), "-n", "elsewhere", "--policy", policyFile)
	g.Expect(code).To(gomega.Equal(2), out)
	g.Expect(out).To(gomega.ContainSubstring(`its namespace "` + ns + `" does not match the namespace "elsewhere" given with -n`))
}

// kubectlAdmin runs kubectl apply --dry-run=server of file as the cluster's admin.
func kubectlAdmin(file string) (string, error) {
	out, err := exec.Command(filepath.Join(env.BinDir, "kubectl"), "--kubeconfig", env.KubeconfigPath,
		"apply", "--dry-run=server", "-f", file).CombinedOutput()
	return string(out), err
}

// A user asks for access with `kubectl fixity grant`, a second person approves it with
// `kubectl fixity approve`, and `kubectl fixity status` shows the pod's verified record and,
// after the exec, its taint and the operator's events; and a node's recorded baseline.
func TestCLIGrantApproveAndStatus(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.Approvals = 1 })
	runningPod(t, ctx, ns, "web")

	out, code := fixityCLI(t, alice.kubeconfig, "grant", "web", "-n", ns, "--access", "exec", "--for", "10m",
		"--reason", "INC-42: read the cache state", "--name", "inc-42")
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.ContainSubstring("accessgrant.fixity.dev/inc-42 created in namespace " + ns))
	g.Expect(out).To(gomega.ContainSubstring("phase: Pending, 0 of 1 approvals; an approver runs: kubectl fixity approve inc-42 -n " + ns))

	// The requester cannot approve their own grant: the webhook's denial is shown.
	out, code = fixityCLI(t, alice.kubeconfig, "approve", "inc-42", "-n", ns)
	g.Expect(code).To(gomega.Equal(2), out)
	g.Expect(out).To(gomega.ContainSubstring("denied the request"))

	out, code = fixityCLI(t, bob.kubeconfig, "approve", "inc-42", "-n", ns)
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.ContainSubstring("approves inc-42 (requested by alice: INC-42: read the cache state)"))
	g.Expect(out).To(gomega.ContainSubstring("phase: Active until "))
	// What the dashboard shows: the grant active, the self-approval denied, and the webhooks'
	// latency by the same webhook path.
	g.Eventually(scrape, eventually, poll).Should(gomega.And(
		gomega.MatchRegexp(`%s\{namespace=%q\} 1\n`, metrics.GrantsActiveName, ns),
		gomega.MatchRegexp(`%s\{decision=%q,webhook=%q\} [1-9]`, metrics.AdmissionDecisionsName, metrics.DecisionDenied, accessgrant.ApprovalValidatePath),
		gomega.MatchRegexp(`%s_count\{webhook=%q\} [1-9]`, metrics.AdmissionLatencyName, accessgrant.ApprovalValidatePath),
	))

	out, err := alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), out)

	g.Eventually(func() string {
		out, _ := fixityCLI(t, env.KubeconfigPath, "status", "web", "-n", ns)
		return out
	}, eventually, poll).Should(gomega.And(
		gomega.ContainSubstring("Pod "+ns+"/web"),
		gomega.ContainSubstring("policies:  "+ns+" (Enforce)"),
		gomega.ContainSubstring("container web: "+image+", no signature required"),
		gomega.ContainSubstring("spec:      as admitted"),
		gomega.ContainSubstring("tainted:   InteractiveAccess: exec by alice under grant "+ns+"/inc-42"),
		gomega.ContainSubstring(fixityv1.EventInteractiveAccess+"  Exec by alice on pod web under grant "+ns+"/inc-42"),
	))

	// A node with a baseline: its recorded kernel, OS image, kubelet and runtime.
	pool, nodes := nodePool(t, ctx, 1)
	nodePolicy(t, ctx, pool, 1)
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(phase(fixityv1.NodeClean))
	out, code = fixityCLI(t, env.KubeconfigPath, "status", "node/"+nodes[0])
	g.Expect(code).To(gomega.Equal(0), out)
	g.Expect(out).To(gomega.And(gomega.ContainSubstring("Node "+nodes[0]), gomega.ContainSubstring("phase Clean"),
		gomega.ContainSubstring(`kernel:    recorded "`+kernel+`", now "`+kernel+`"`), gomega.ContainSubstring(fixityv1.EventBaselineRecorded)))
}
