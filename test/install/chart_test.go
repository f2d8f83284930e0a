package install

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/builders"
	"github.com/fixity-dev/fixity/test/cluster"
)

// helm runs the chart's Helm with args and returns its combined output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helmBinary(t, root), args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rendered is helm template's objects by kind and name.
func rendered(t *testing.T, sets ...string) map[string]*unstructured.Unstructured {
	t.Helper()
	g := gomega.NewWithT(t)
	args := []string{"template", "fixity", "charts/fixity", "--namespace", "fixity-system"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	objs := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else {
			g.Expect(err).NotTo(gomega.HaveOccurred())
		}
		if len(u.Object) > 0 {
			objs[u.GetKind()+"/"+u.GetName()] = u
		}
	}
	return objs
}

// Each value turns its part on or off; every combination lints cleanly.
func TestChartValues(t *testing.T) {
	for name, tc := range map[string]struct {
		sets    []string
		present []string
		absent  []string
	}{
		"defaults": {
			present: []string{"CustomResourceDefinition/immutabilitypolicies.fixity.dev", "CustomResourceDefinition/reports.openreports.io",
				"CustomResourceDefinition/clusterreports.openreports.io", "Service/fixity-controller-manager-metrics", "ClusterRole/fixity-metrics-reader"},
			absent: []string{"ServiceMonitor/fixity-controller-manager", "ConfigMap/fixity-dashboard"},
		},
		"another tool installed OpenReports": {
			sets:    []string{"openreports.installCRDs=false"},
			present: []string{"CustomResourceDefinition/immutabilitypolicies.fixity.dev"},
			absent:  []string{"CustomResourceDefinition/reports.openreports.io", "CustomResourceDefinition/clusterreports.openreports.io"},
		},
		"CRDs managed elsewhere": {
			sets:   []string{"crds.install=false", "openreports.installCRDs=false"},
			absent: []string{"CustomResourceDefinition/immutabilitypolicies.fixity.dev", "CustomResourceDefinition/reports.openreports.io"},
		},
		"no metrics Service": {
			sets:   []string{"metrics.service.enabled=false"},
			absent: []string{"Service/fixity-controller-manager-metrics", "ServiceMonitor/fixity-controller-manager"},
		},
		"ServiceMonitor": {
			sets:    []string{"metrics.service.enabled=false", "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kube-prometheus"},
			present: []string{"ServiceMonitor/fixity-controller-manager", "Service/fixity-controller-manager-metrics"},
		},
		"dashboard": {
			sets:    []string{"grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring"},
			present: []string{"ConfigMap/fixity-dashboard"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			args := []string{"lint", "--strict", "charts/fixity"}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			g.Expect(err).NotTo(gomega.HaveOccurred(), out)
			objs := rendered(t, tc.sets...)
			for _, k := range tc.present {
				g.Expect(objs).To(gomega.HaveKey(k))
			}
			for _, k := range tc.absent {
				g.Expect(objs).NotTo(gomega.HaveKey(k))
			}
		})
	}
}

// The ServiceMonitor scrapes the metrics Service's HTTPS port with the scraper's token, and
// takes the labels a Prometheus selects it by.
func TestChartServiceMonitor(t *testing.T) {
	g := gomega.NewWithT(t)
	objs := rendered(t, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kube-prometheus")
	sm := objs["ServiceMonitor/fixity-controller-manager"]
	g.Expect(sm.GetLabels()).To(gomega.HaveKeyWithValue("release", "kube-prometheus"))
	g.Expect(sm.GetNamespace()).To(gomega.Equal("fixity-system"))
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	svc := objs["Service/fixity-controller-manager-metrics"]
	for k, v := range selector {
		g.Expect(svc.GetLabels()).To(gomega.HaveKeyWithValue(k, v), "the ServiceMonitor selects the metrics Service")
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(endpoints).To(gomega.ConsistOf(gomega.And(
		gomega.HaveKeyWithValue("port", "https"), gomega.HaveKeyWithValue("scheme", "https"),
		gomega.HaveKeyWithValue("bearerTokenFile", "/var/run/secrets/kubernetes.io/serviceaccount/token"))))
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	g.Expect(ports).To(gomega.ConsistOf(gomega.And(gomega.HaveKeyWithValue("name", "https"), gomega.HaveKeyWithValue("targetPort", gomega.BeNumerically("==", 8443)))),
		"the managers serve metrics on 8443 (--metrics-bind-address)")
}

// The dashboard is valid JSON for Grafana, and every metric it queries is one the operator (or
// controller-runtime's webhook server) exports: a renamed metric cannot leave a panel empty.
func TestChartDashboardQueriesExistingMetrics(t *testing.T) {
	g := gomega.NewWithT(t)
	objs := rendered(t, "grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring")
	cm := objs["ConfigMap/fixity-dashboard"]
	g.Expect(cm.GetNamespace()).To(gomega.Equal("monitoring"))
	g.Expect(cm.GetLabels()).To(gomega.HaveKeyWithValue("grafana_dashboard", "1"))
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "fixity.json")
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	g.Expect(json.Unmarshal([]byte(raw), &dash)).To(gomega.Succeed())
	g.Expect(dash.UID).To(gomega.Equal("fixity"))

	exported := map[string]bool{}
	for _, n := range []string{
		metrics.AdmissionViolationsName, metrics.DriftDetectedName, metrics.DriftReplacementsName, metrics.EvictionsBlockedName,
		metrics.BreakerOpenName, metrics.HeldPodsName, metrics.DriftReplacedName, metrics.AdmissionDecisionsName,
		metrics.AdmissionLatencyName, metrics.ImageVerificationsName, metrics.GrantsActiveName,
		metrics.NodeDriftDetectedName, metrics.NodesDriftedName, metrics.NodesReplacingName, metrics.NodeDrainsStuckName,
		metrics.NodeBreakerOpenName, metrics.NodeReplacementsName,
	} {
		exported[n] = true
	}
	name := regexp.MustCompile(`\b(fixity_[a-z_]+|controller_runtime_[a-z_]+)\b`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		g.Expect(p.Targets).NotTo(gomega.BeEmpty(), p.Title)
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				g.Expect(exported).To(gomega.HaveKey(base), "panel %q queries %s", p.Title, m)
				queried[base] = true
			}
		}
	}
	// What issue 16 asks the dashboard to cover.
	for _, n := range []string{metrics.AdmissionLatencyName, metrics.AdmissionDecisionsName, metrics.ImageVerificationsName,
		metrics.DriftDetectedName, metrics.DriftReplacedName, metrics.BreakerOpenName, metrics.GrantsActiveName} {
		g.Expect(queried).To(gomega.HaveKey(n))
	}
}

// values.schema.json refuses a value of the wrong type, out of range, or misspelt, naming it.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ set, names string }{
		{"replicas=two", "replicas"},
		{"replicas=0", "replicas"},
		{"metrics.serviceMonitor.interval=soon", "interval"},
		{"metrics.sevriceMonitor.enabled=true", "sevriceMonitor"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"grafana.dashboard.namespace=Not_A_Namespace", "namespace"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			g := gomega.NewWithT(t)
			out, err := helm(t, "lint", "charts/fixity", "--set", tc.set)
			g.Expect(err).To(gomega.HaveOccurred(), out)
			g.Expect(out).To(gomega.ContainSubstring("values don't meet the specifications of the schema"))
			g.Expect(out).To(gomega.ContainSubstring(tc.names))
		})
	}
	// A string where a boolean belongs.
	g := gomega.NewWithT(t)
	out, err := helm(t, "lint", "charts/fixity", "--set-string", "grafana.dashboard.enabled=yes")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring("enabled"))
}

// The install command of the platform team's page (docs/platform-team.md) installs the chart as
// it says, into a fresh API server: the CRDs, the OpenReports CRDs, the webhooks and the managers.
func TestDocsInstall(t *testing.T) {
	g := gomega.NewWithT(t)
	root, err := cluster.RepoRoot()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	steps, err := builders.DocSteps(filepath.Join(root, "docs", "platform-team.md"))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	c, err := cluster.StartControlPlane(cluster.Options{})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	bin := t.TempDir()
	g.Expect(os.Symlink(helmBinary(t, root), filepath.Join(bin, "helm"))).To(gomega.Succeed())
	shell := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBECONFIG=" + c.KubeconfigPath}
	g.Expect(builders.RunDocSteps(t, steps, "install", root, shell)).To(gomega.BeNumerically(">", 0), "the page has an install command")

	scheme := operator.NewScheme()
	g.Expect(apiextensionsv1.AddToScheme(scheme)).To(gomega.Succeed())
	k8s, err := client.New(c.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	for _, o := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "fixity-system", Name: "fixity-controller-manager"}},
		&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "immutabilitypolicies.fixity.dev"}},
		&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "reports.openreports.io"}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "fixity-validating-webhook-configuration"}},
	} {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(o), o)).To(gomega.Succeed(), "%T %s", o, o.GetName())
	}
}
