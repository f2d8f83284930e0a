package integration

import (
	"context"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/fixity-dev/fixity/webhooks/podaccess"
)

// The kubelet's exec, attach, run, portForward and checkpoint endpoints reached through the API
// server's nodes/proxy are decided as pods/exec on the pod they name; the kubelet's read-only
// endpoints are not sent to the operator at all.
func TestNodeProxyIsDecidedAsPodAccess(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Ignore\n")
	g.Expect(k8s.Create(ctx, pod(ns, "web"))).To(gomega.Succeed())
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("proxied")}}
	g.Expect(k8s.Create(ctx, node)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), node) })
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.57"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = 1 // nothing listens: an admitted request fails to connect
	g.Expect(k8s.Status().Update(ctx, node)).To(gomega.Succeed())

	cfg := asAlice()
	alice, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	proxy := func(path string) error {
		return alice.CoreV1().RESTClient().Post().AbsPath("/api/v1/nodes/" + node.Name + "/proxy/" + path).Do(ctx).Error()
	}
	reviewed := nodeProxyReviews(g)
	for _, path := range []string{
		"exec/" + ns + "/web/web?command=sh&stdin=true",
		"attach/" + ns + "/web/web",
		"run/" + ns + "/web/web",
		"checkpoint/" + ns + "/web/web",
		"stats/../exec/" + ns + "/web/web",
	} {
		g.Expect(proxy(path)).To(gomega.MatchError(gomega.And(
			gomega.ContainSubstring(`admission webhook "nodeproxy.fixity.dev" denied the request`),
			gomega.ContainSubstring("[policy "+pol+"]"),
			gomega.ContainSubstring("for break-glass access create an AccessGrant in namespace "+ns),
		)), path)
	}
	asked := nodeProxyReviews(g)
	g.Expect(asked).To(gomega.BeNumerically(">=", reviewed+5), "each denial above was a review")
	// Reading stats is not pod access: it reaches the (absent) kubelet without the operator.
	err = proxy("stats/summary")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(err.Error()).NotTo(gomega.ContainSubstring("fixity.dev"))
	g.Expect(nodeProxyReviews(g)).To(gomega.Equal(asked), "the matchCondition keeps /stats/ away from the operator")
	// A pod in a namespace no policy covers is the kubelet's business alone.
	other := createNamespace(t, ctx, nil)
	g.Expect(k8s.Create(ctx, pod(other, "web"))).To(gomega.Succeed())
	err = proxy("exec/" + other + "/web/web")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(err.Error()).NotTo(gomega.ContainSubstring("fixity.dev"))
}

// nodeProxyReviews is how many admission reviews the nodes/proxy webhook has answered
// (controller-runtime's controller_runtime_webhook_requests_total for its path).
func nodeProxyReviews(g gomega.Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var sum float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == podaccess.NodeProxyPath {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
