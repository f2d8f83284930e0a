package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/webhookcerts"
	"github.com/fixity-dev/fixity/test/cluster"
)

const (
	eventually = 2 * time.Minute
	poll       = 200 * time.Millisecond

	serviceAccount = "fixity-controller-manager"
	certSecret     = "fixity-webhook-server-cert"
	webhookService = "fixity-webhook-service"
)

// serverName is the name the API server connects to: <webhook Service>.<namespace>.svc.
func serverName(namespace string) string { return webhookService + "." + namespace + ".svc" }

// TestInstall installs Fixity as a platform team would, with kustomize (config/default) and with
// Helm (charts/fixity), runs the manager as its ServiceAccount with the Deployment's arguments,
// and checks what the API server needs to call the webhooks: a certificate for the Service,
// signed by the CA in every webhook's caBundle, served only once the kubelet has mounted it;
// that the operator's own RBAC is enough for its controllers; and that a restart keeps the CA.
func TestInstall(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildManager(t, root, t.TempDir())
	helm := func(namespace string) func(t *testing.T, _ *cluster.Cluster) *exec.Cmd {
		return func(t *testing.T, _ *cluster.Cluster) *exec.Cmd {
			return exec.Command(helmBinary(t, root), "template", "fixity", filepath.Join(root, "charts", "fixity"), "--namespace", namespace)
		}
	}
	kustomize := func(dir ...string) func(t *testing.T, c *cluster.Cluster) *exec.Cmd {
		return func(_ *testing.T, c *cluster.Cluster) *exec.Cmd {
			return c.Kubectl("kustomize", filepath.Join(append([]string{root, "config"}, dir...)...))
		}
	}
	renders := []struct {
		name, namespace string
		render          func(t *testing.T, c *cluster.Cluster) *exec.Cmd
	}{
		{"kustomize", fixityv1.OperatorNamespace, kustomize("default")},
		{"helm", fixityv1.OperatorNamespace, helm(fixityv1.OperatorNamespace)},
		// Another namespace: the operator and the control plane stay exempt.
		{"kustomize overlay into security", "security", kustomize("overlays", "namespace")},
		{"helm into security", "security", helm("security")},
	}
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) { checkInstall(t, bin, r.namespace, r.render) })
	}
}

func checkInstall(t *testing.T, bin, namespace string, render func(t *testing.T, c *cluster.Cluster) *exec.Cmd) {
	g := gomega.NewWithT(t)
	ctx := t.Context()
	c, err := cluster.StartControlPlane(cluster.Options{})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	k8s, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	g.Expect(err).NotTo(gomega.HaveOccurred())

	// The install, as a platform team applies it (helm install --create-namespace).
	g.Expect(c.CreateNamespace(ctx, namespace)).To(gomega.Succeed())
	work := t.TempDir()
	rendered := filepath.Join(work, "fixity.yaml")
	out, err := render(t, c).Output()
	g.Expect(err).NotTo(gomega.HaveOccurred(), "rendering the install: %s", exitMessage(err))
	g.Expect(os.WriteFile(rendered, out, 0o600)).To(gomega.Succeed())
	out, err = c.Kubectl("apply", "--server-side", "-f", rendered).CombinedOutput()
	g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
	// Every webhook exempts the control plane and the namespace the operator runs in, so it
	// never fails closed on its own pods.
	g.Expect(exemptNamespaces(ctx, g, k8s)).To(gomega.HaveEach(gomega.ConsistOf(policy.AlwaysExcludedNamespaces(namespace))))

	// The manager runs with the Deployment's arguments (local addresses and paths aside) and
	// only the rights the install grants its ServiceAccount.
	var deploy appsv1.Deployment
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "fixity-controller-manager"}, &deploy)).To(gomega.Succeed())
	args := deploy.Spec.Template.Spec.Containers[0].Args
	g.Expect(args).To(gomega.ContainElement("--webhook-cert-secret=" + certSecret))
	certDir := filepath.Join(work, "serving-certs")
	g.Expect(os.Mkdir(certDir, 0o700)).To(gomega.Succeed())
	port, err := cluster.FreePort()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	mgr := cluster.NewManager(c, bin, filepath.Join(work, "manager.log"))
	mgr.Env = []string{"POD_NAMESPACE=" + namespace}
	mgr.Args = slices.Concat(args, []string{
		"--kubeconfig", asServiceAccount(t, c, work, namespace),
		"--webhook-port", strconv.Itoa(port),
		"--webhook-cert-path", certDir,
		"--metrics-bind-address", "0",
	})
	g.Expect(mgr.Launch()).To(gomega.Succeed())
	t.Cleanup(mgr.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(mgr.Log)
			t.Logf("manager log:\n%s", log)
		}
	})

	// The CA and the certificate land in the shipped Secret, the CA in every webhook.
	secret := &corev1.Secret{}
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: certSecret}, secret)).To(gomega.Succeed())
		g.Expect(secret.Data).To(gomega.HaveKey("ca.crt"))
		g.Expect(secret.Data).To(gomega.HaveKey("tls.crt"))
		g.Expect(secret.Data).To(gomega.HaveKey("tls.key"))
		g.Expect(caBundles(ctx, g, k8s)).To(gomega.HaveEach(gomega.Equal(secret.Data["ca.crt"])))
	}, eventually, poll).Should(gomega.Succeed())
	ca := secret.Data["ca.crt"]

	// Until the kubelet mounts the Secret there is nothing to serve: not ready, so no traffic.
	g.Expect(mgr.Running()).To(gomega.BeTrue())
	g.Expect(mgr.Ready()).To(gomega.BeFalse(), "ready before the certificate was mounted")

	// What the kubelet does with the volume.
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		g.Expect(os.WriteFile(filepath.Join(certDir, f), secret.Data[f], 0o600)).To(gomega.Succeed())
	}
	g.Expect(mgr.WaitReady(ctx)).To(gomega.Succeed())
	review := admit(t, port, ca, namespace, "default", false)
	g.Expect(review.Response.UID).To(gomega.Equal(types.UID("install-test")))
	g.Expect(review.Response.Allowed).To(gomega.BeTrue(), "a pod no policy selects is allowed")

	// With its own RBAC, the operator's controllers work too: a policy becomes Ready.
	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "install"},
		Spec: fixityv1.ImmutabilityPolicySpec{Match: fixityv1.PolicyMatch{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": "true"}},
		}},
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(p.Status.ObservedGeneration).To(gomega.Equal(p.Generation))
		g.Expect(p.Status.Conditions).To(gomega.ContainElement(gomega.And(
			gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionTrue))))
	}, eventually, poll).Should(gomega.Succeed())

	checkNodeDrift(ctx, g, k8s)

	// A restart (or a second replica) keeps the CA the API server already trusts.
	mgr.Stop()
	g.Expect(mgr.Start(ctx)).To(gomega.Succeed())
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: certSecret}, secret)).To(gomega.Succeed())
	g.Expect(secret.Data["ca.crt"]).To(gomega.Equal(ca))
	g.Expect(admit(t, port, ca, namespace, "default", false).Response.Allowed).To(gomega.BeTrue())

	// A policy over every namespace denies a privileged pod anywhere but in the control plane
	// and the operator's own namespace.
	all := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "everywhere"},
		Spec:       fixityv1.ImmutabilityPolicySpec{Images: fixityv1.ImageRules{Digest: fixityv1.DigestIgnore}},
	}
	g.Expect(k8s.Create(ctx, all)).To(gomega.Succeed())
	g.Eventually(func() bool { return admit(t, port, ca, namespace, "default", true).Response.Allowed }, eventually, poll).
		Should(gomega.BeFalse(), "a privileged pod in a namespace the policy covers")
	for _, exempt := range policy.AlwaysExcludedNamespaces(namespace) {
		g.Expect(admit(t, port, ca, namespace, exempt, true).Response.Allowed).To(gomega.BeTrue(), "a privileged pod in %s", exempt)
	}
}

// checkNodeDrift has the operator, with its own RBAC, record a node's baseline, find its
// kernel changed in place and cordon it. The node is an object whose status this test plays
// the kubelet for (there is no node lifecycle controller here).
func checkNodeDrift(ctx context.Context, g gomega.Gomega, k8s client.Client) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "install-node", Labels: map[string]string{"pool": "install"}}}
	g.Expect(k8s.Create(ctx, node)).To(gomega.Succeed())
	before := node.DeepCopy()
	node.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		NodeInfo: corev1.NodeSystemInfo{KernelVersion: "6.1.0-28-cloud-amd64", KubeletVersion: "v1.37.2", MachineID: "m", SystemUUID: "s"},
	}
	g.Expect(k8s.Status().Patch(ctx, node, client.MergeFrom(before))).To(gomega.Succeed())
	np := &fixityv1.NodeImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "install"},
		Spec: fixityv1.NodeImmutabilityPolicySpec{
			NodeSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "install"}},
			Action:            fixityv1.NodeCordon,
			MaxDriftedPercent: ptr.To[int32](100),
		},
	}
	g.Expect(k8s.Create(ctx, np)).To(gomega.Succeed())
	baseline := &fixityv1.NodeBaseline{}
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), baseline)).To(gomega.Succeed())
		g.Expect(baseline.Status.Phase).To(gomega.Equal(fixityv1.NodeClean))
	}, eventually, poll).Should(gomega.Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), node)).To(gomega.Succeed())
	before = node.DeepCopy()
	node.Status.NodeInfo.KernelVersion = "6.1.0-29-cloud-amd64"
	g.Expect(k8s.Status().Patch(ctx, node, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), node)).To(gomega.Succeed())
		g.Expect(node.Spec.Unschedulable).To(gomega.BeTrue())
		g.Expect(node.Spec.Taints).To(gomega.ContainElement(gomega.HaveField("Key", fixityv1.DriftedTaint)))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), baseline)).To(gomega.Succeed())
		g.Expect(baseline.Labels).To(gomega.HaveKeyWithValue(fixityv1.DisruptedLabel, "true"))
		g.Expect(baseline.Status.Phase).To(gomega.Equal(fixityv1.NodeCordoned))
	}, eventually, poll).Should(gomega.Succeed(), "the operator cordons the node with its own rights")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(np), np)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(np), np)).To(gomega.Succeed())
		g.Expect(np.Status.ReplacingNodes).To(gomega.BeEquivalentTo(1))
	}, eventually, poll).Should(gomega.Succeed())
}

// exemptNamespaces returns, per webhook of Fixity's two configurations, the namespaces its
// namespaceSelector leaves out.
func exemptNamespaces(ctx context.Context, g gomega.Gomega, k8s client.Client) [][]string {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookcerts.MutatingConfiguration}, &m)).To(gomega.Succeed())
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookcerts.ValidatingConfiguration}, &v)).To(gomega.Succeed())
	var selectors []*metav1.LabelSelector
	for _, w := range m.Webhooks {
		selectors = append(selectors, w.NamespaceSelector)
	}
	for _, w := range v.Webhooks {
		selectors = append(selectors, w.NamespaceSelector)
	}
	var out [][]string
	for _, sel := range selectors {
		var names []string
		for _, e := range sel.MatchExpressions {
			if e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpNotIn {
				names = append(names, e.Values...)
			}
		}
		out = append(out, names)
	}
	g.Expect(out).NotTo(gomega.BeEmpty())
	return out
}

// helmBinary is $FIXITY_HELM (the Makefile sets it), else the Helm the Makefile installs in bin/.
func helmBinary(t *testing.T, root string) string {
	t.Helper()
	if h := os.Getenv("FIXITY_HELM"); h != "" {
		return h
	}
	found, _ := filepath.Glob(filepath.Join(root, "bin", "helm-*"))
	if len(found) == 0 {
		t.Fatal("no Helm: run the tests with make test, which installs it into bin/")
	}
	return found[len(found)-1]
}

func exitMessage(err error) string {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(ee.Stderr)
	}
	return ""
}

func buildManager(t *testing.T, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}

// asServiceAccount writes a kubeconfig that impersonates the operator's ServiceAccount, so the
// manager has exactly the rights config/rbac grants it.
func asServiceAccount(t *testing.T, c *cluster.Cluster, dir, namespace string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.AuthInfos {
		u.Impersonate = "system:serviceaccount:" + namespace + ":" + serviceAccount
		u.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace}
	}
	path := filepath.Join(dir, "operator.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// caBundles returns the caBundle of every webhook in Fixity's two configurations.
func caBundles(ctx context.Context, g gomega.Gomega, k8s client.Client) [][]byte {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookcerts.MutatingConfiguration}, &m)).To(gomega.Succeed())
	g.Expect(k8s.Get(ctx, types.NamespacedName{Name: webhookcerts.ValidatingConfiguration}, &v)).To(gomega.Succeed())
	var out [][]byte
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	g.Expect(out).To(gomega.HaveLen(len(m.Webhooks) + len(v.Webhooks)))
	g.Expect(len(m.Webhooks) + len(v.Webhooks)).To(gomega.BeNumerically(">", 0))
	return out
}

// admit sends a review of a pod created in podNamespace (privileged or not) to the validating pod
// webhook as the API server would: over TLS to the Service's name in the operator's namespace,
// trusting only the caBundle.
func admit(t *testing.T, port int, ca []byte, namespace, podNamespace string, privileged bool) *admissionv1.AdmissionReview {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("the caBundle holds no certificate")
	}
	spec := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: podNamespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1.0"}}},
	}
	if privileged {
		spec.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	}
	pod, _ := json.Marshal(spec)
	body, _ := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "install-test", Operation: admissionv1.Create, Namespace: podNamespace, Name: "web",
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Object:   runtime.RawExtension{Raw: pod},
		},
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName(namespace), MinVersion: tls.VersionTLS12},
	}}
	url := fmt.Sprintf("https://%s/validate-v1-pod", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("calling the webhook as %s: %v", serverName(namespace), err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	out := &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(data, out); err != nil || out.Response == nil {
		t.Fatalf("webhook answer is not an AdmissionReview (%v): %s", err, data)
	}
	return out
}
