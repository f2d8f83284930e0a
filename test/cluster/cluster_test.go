package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fixity-dev/fixity/test/cluster"
)

const (
	digest     = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	appImage   = "registry.example/app@" + digest
	pollEvery  = 200 * time.Millisecond
	waitAtMost = 30 * time.Second
)

func TestStartFullCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a full local cluster")
	}
	began := time.Now()
	c, err := cluster.Start(cluster.Options{Nodes: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Full cluster started in %s", time.Since(began).Round(time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Component logs:\n%s", c.TailLogs(40))
		}
		if !stopped {
			if err := c.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	})

	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatalf("Building client: %v", err)
	}
	// The control plane built from Go modules reports its release (hack/build-k8s.sh's -ldflags),
	// which kubectl checks.
	if v, err := cs.Discovery().ServerVersion(); err != nil || v.GitVersion != "v1.37.2" {
		t.Fatalf("server version = %v (%v), want v1.37.2", v, err)
	}
	if want := []string{"kwok-node-0", "kwok-node-1"}; !slices.Equal(c.NodeNames, want) {
		t.Fatalf("NodeNames = %v, want %v", c.NodeNames, want)
	}

	// The admin kubeconfig works for kubectl too.
	out, err := c.Kubectl("get", "nodes", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get nodes: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"node/kwok-node-0", "node/kwok-node-1"}) {
		t.Fatalf("kubectl get nodes = %q", got)
	}

	replicas := int32(2)
	selector := map[string]string{"app": "demo"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: metav1.NamespaceDefault},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: selector},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: appImage}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(metav1.NamespaceDefault).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("Creating deployment: %v", err)
	}

	poll(t, "a ReplicaSet owned by the deployment", func(ctx context.Context) (bool, error) {
		rss, err := cs.AppsV1().ReplicaSets(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
		if err != nil {
			return false, err
		}
		for _, rs := range rss.Items {
			if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Kind == "Deployment" && ref.Name == deploy.Name {
				return true, nil
			}
		}
		return false, nil
	})

	pods := waitForReadyPods(t, cs, c.NodeNames, metav1.NamespaceDefault, selector, 2, "")

	// Evict through policy/v1, as a drain would.
	victim := pods[0]
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: victim.Name, Namespace: victim.Namespace}}
	if err := cs.CoreV1().Pods(victim.Namespace).EvictV1(ctx, eviction); err != nil {
		t.Fatalf("Evicting pod %s: %v", victim.Name, err)
	}
	poll(t, "evicted pod "+victim.Name+" to go away", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(victim.Namespace).Get(ctx, victim.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	replaced := waitForReadyPods(t, cs, c.NodeNames, metav1.NamespaceDefault, selector, 2, victim.Name)
	t.Logf("Pod %s evicted; pods now %s, %s", victim.Name, replaced[0].Name, replaced[1].Name)

	// imageID for the other image forms, init containers included, in a new namespace: with
	// ServiceAccount admission on, its pods need the default ServiceAccount CreateNamespace
	// waits for.
	if err := c.CreateNamespace(ctx, "variants"); err != nil {
		t.Fatalf("CreateNamespace: %v", err)
	}
	variants := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "variants", Namespace: "variants", Labels: map[string]string{"app": "variants"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "registry.example/init:v1@" + digest}},
			Containers: []corev1.Container{
				{Name: "tagged", Image: "registry.example/tagged:1.2"},
				{Name: "port", Image: "localhost:5000/team/app:v2@" + digest},
			},
		},
	}
	if _, err := cs.CoreV1().Pods(variants.Namespace).Create(ctx, variants, metav1.CreateOptions{}); err != nil {
		t.Fatalf("Creating pod variants: %v", err)
	}
	got := waitForReadyPods(t, cs, c.NodeNames, variants.Namespace, variants.Labels, 1, "")[0]
	if got.Spec.ServiceAccountName != "default" || !slices.ContainsFunc(got.Spec.Volumes, func(v corev1.Volume) bool { return v.Projected != nil }) {
		t.Errorf("Pod variants has no projected service account token; is ServiceAccount admission on?")
	}
	wantIDs := map[string]string{
		"init":   "registry.example/init@" + digest,
		"tagged": "registry.example/tagged:1.2",
		"port":   "localhost:5000/team/app@" + digest,
	}
	for _, st := range slices.Concat(got.Status.InitContainerStatuses, got.Status.ContainerStatuses) {
		if st.ImageID != wantIDs[st.Name] {
			t.Errorf("Container %s: imageID = %q, want %q", st.Name, st.ImageID, wantIDs[st.Name])
		}
		delete(wantIDs, st.Name)
	}
	if len(wantIDs) != 0 {
		t.Errorf("No status for containers %v", wantIDs)
	}

	pids := c.PIDs()
	if len(pids) != 3 {
		t.Fatalf("PIDs = %v, want controller manager, scheduler and kwok", pids)
	}
	stopped = true
	stopBegan := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stopped in %s", time.Since(stopBegan).Round(time.Millisecond))
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after Stop: kill(0) = %v", name, pid, err)
		}
	}
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Errorf("API server still answers after Stop")
	}
}

// waitForReadyPods waits until exactly n live pods in namespace match selector, all on nodes,
// Running and Ready, none named exclude, with every digest-pinned container reporting its
// digest as imageID; it returns them.
func waitForReadyPods(t *testing.T, cs kubernetes.Interface, nodes []string, namespace string, selector map[string]string, n int, exclude string) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	var state string
	poll(t, fmt.Sprintf("%d Ready pods with labels %v", n, selector), func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
		if err != nil {
			return false, err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		state = describe(pods)
		if len(pods) != n {
			return false, nil
		}
		for _, p := range pods {
			if p.Name == exclude || !slices.Contains(nodes, p.Spec.NodeName) || p.Status.Phase != corev1.PodRunning || !podReady(p) {
				return false, nil
			}
			if len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
				return false, nil
			}
		}
		return true, nil
	}, func() string { return state })
	for _, p := range pods {
		if p.Spec.Containers[0].Image == appImage && p.Status.ContainerStatuses[0].ImageID != appImage {
			t.Errorf("Pod %s: containerStatuses[0].imageID = %q, want %q", p.Name, p.Status.ContainerStatuses[0].ImageID, appImage)
		}
	}
	return pods
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func describe(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s node=%q phase=%s ready=%t", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(p)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// poll waits for cond, failing the test with what it waited for (and, if given, the last
// observed state) on timeout.
func poll(t *testing.T, what string, cond wait.ConditionWithContextFunc, state ...func() string) {
	t.Helper()
	var lastErr error
	err := wait.PollUntilContextTimeout(t.Context(), pollEvery, waitAtMost, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		msg := fmt.Sprintf("Waiting for %s: %v", what, err)
		if lastErr != nil {
			msg += fmt.Sprintf(" (last error: %v)", lastErr)
		}
		for _, s := range state {
			msg += "; last seen: " + s()
		}
		t.Fatal(msg)
	}
}

func TestStartControlPlane(t *testing.T) {
	dir := t.TempDir()
	crdDir := filepath.Join(dir, "crds")
	if err := os.Mkdir(crdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(crdDir, "widgets.yaml"), widgetCRD)
	webhookPath := filepath.Join(dir, "webhook.yaml")
	writeFile(t, webhookPath, widgetWebhook)

	began := time.Now()
	c, err := cluster.StartControlPlane(cluster.Options{
		CRDDirectoryPaths: []string{crdDir},
		WebhookPaths:      []string{webhookPath},
	})
	if err != nil {
		t.Fatalf("StartControlPlane: %v", err)
	}
	t.Logf("Control plane started in %s", time.Since(began).Round(time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Component logs:\n%s", c.TailLogs(40))
		}
		if !stopped {
			if err := c.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	})
	ctx := t.Context()

	// The CRD is served.
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatalf("Building dynamic client: %v", err)
	}
	widgets := schema.GroupVersionResource{Group: "test.fixity.dev", Version: "v1", Resource: "widgets"}
	if _, err := dyn.Resource(widgets).Namespace(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("Listing widgets: %v", err)
	}

	// The webhook points at the local serving address with envtest's CA.
	wh := c.Webhook
	if wh.LocalServingHost != "127.0.0.1" || wh.LocalServingPort == 0 {
		t.Fatalf("Webhook serving address = %s:%d, want 127.0.0.1 and a port", wh.LocalServingHost, wh.LocalServingPort)
	}
	if _, err := os.Stat(filepath.Join(wh.LocalServingCertDir, "tls.crt")); err != nil {
		t.Fatalf("Webhook serving certificate: %v", err)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatalf("Building client: %v", err)
	}
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "widgets", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Getting webhook configuration: %v", err)
	}
	// envtest joins host and path with an extra slash ("https://host:port//validate-widget").
	prefix := fmt.Sprintf("https://127.0.0.1:%d/", wh.LocalServingPort)
	if got := vwc.Webhooks[0].ClientConfig.URL; got == nil || !strings.HasPrefix(*got, prefix) || !strings.HasSuffix(*got, "/validate-widget") {
		t.Fatalf("Webhook URL = %v, want %s.../validate-widget", got, prefix)
	}
	if len(vwc.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("Webhook has no CA bundle")
	}

	// A server in the test process with envtest's serving certificate gets the call.
	paths := serveDenyingWebhook(t, wh.LocalServingHost, wh.LocalServingPort, wh.LocalServingCertDir)
	widget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.fixity.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": metav1.NamespaceDefault},
	}}
	_, err = dyn.Resource(widgets).Namespace(metav1.NamespaceDefault).Create(ctx, widget, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "denied by the test webhook") {
		t.Fatalf("Creating a widget: err = %v, want the test webhook's denial", err)
	}
	select {
	case path := <-paths:
		t.Logf("Webhook called at path %q", path)
	default:
		t.Fatalf("Webhook server saw no request")
	}

	// Control plane only: nothing runs pods.
	if pids := c.PIDs(); len(pids) != 0 {
		t.Fatalf("PIDs = %v, want none", pids)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 0 {
		t.Fatalf("Nodes = %v, %v; want none", nodes, err)
	}

	workDir := c.Dir
	if _, err := os.Stat(c.KubeconfigPath); err != nil {
		t.Fatalf("Kubeconfig: %v", err)
	}
	stopped = true
	stopBegan := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stopped in %s", time.Since(stopBegan).Round(time.Millisecond))
	if _, err := os.Stat(workDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Default work dir %s still exists after Stop: %v", workDir, err)
	}
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Errorf("API server still answers after Stop")
	}
}

// serveDenyingWebhook serves HTTPS on host:port with tls.crt/tls.key from certDir, denying
// every admission request; it reports the request paths it sees.
func serveDenyingWebhook(t *testing.T, host string, port int, certDir string) <-chan string {
	t.Helper()
	paths := make(chan string, 10)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case paths <- r.URL.Path:
		default:
		}
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad admission review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{
			UID:     review.Request.UID,
			Allowed: false,
			Result:  &metav1.Status{Message: "denied by the test webhook"},
		}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("Listening for webhooks: %v", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		_ = srv.ServeTLS(l, filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return paths
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.fixity.dev
spec:
  group: test.fixity.dev
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

const widgetWebhook = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: widgets
webhooks:
- name: widgets.test.fixity.dev
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Fail
  clientConfig:
    service:
      name: webhook
      namespace: default
      path: /validate-widget
  rules:
  - apiGroups: ["test.fixity.dev"]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["widgets"]
`
