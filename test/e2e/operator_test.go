package e2e

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/registry"
)

const (
	eventually = 90 * time.Second
	poll       = 200 * time.Millisecond
	image      = "registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

// enforcedNamespace creates a namespace and a policy selecting it (Enforce with the defaults,
// unless edit changes the spec), and waits until the policy is Ready.
func enforcedNamespace(t *testing.T, ctx context.Context, edit ...func(*fixityv1.ImmutabilityPolicySpec)) string {
	t.Helper()
	g := gomega.NewWithT(t)
	name := uniqueName("shop")
	g.Expect(env.CreateNamespace(ctx, name)).To(gomega.Succeed())
	ns := &corev1.Namespace{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(gomega.Succeed())
	ns.Labels["fixity.dev/enforce"] = name
	g.Expect(k8s.Update(ctx, ns)).To(gomega.Succeed())

	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fixityv1.ImmutabilityPolicySpec{Match: fixityv1.PolicyMatch{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": name}},
		}},
	}
	for _, e := range edit {
		e(&p.Spec)
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(p.Status.Conditions).To(gomega.ContainElement(gomega.And(
			gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionTrue))))
	}, eventually, poll).Should(gomega.Succeed())
	return name
}

// signedBy is a verify rule requiring one signature by key.
func signedBy(k *registry.Key) *fixityv1.VerifyRules {
	return &fixityv1.VerifyRules{Threshold: 1, Authorities: []fixityv1.Authority{{Name: "release", Key: &fixityv1.KeyAuthority{PublicKey: string(k.PublicPEM)}}}}
}

func readyPods(ctx context.Context, ns, app string) func(g gomega.Gomega) []corev1.Pod {
	return func(g gomega.Gomega) []corev1.Pod {
		var pods corev1.PodList
		g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app})).To(gomega.Succeed())
		var ready []corev1.Pod
		for _, p := range pods.Items {
			if podReady(&p) {
				ready = append(ready, p)
			}
		}
		return ready
	}
}

// podReady reports whether p runs, is Ready and is not being deleted.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// fewestReady samples the Ready pods of app in ns every poll, from now until the returned func is
// called, which returns the fewest seen (a list that fails is no sample).
func fewestReady(ctx context.Context, ns, app string) func() int {
	ctx, cancel := context.WithCancel(ctx)
	fewest := math.MaxInt
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = wait.PollUntilContextCancel(ctx, poll, true, func(ctx context.Context) (bool, error) {
			var pods corev1.PodList
			if err := k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
				return false, nil
			}
			n := 0
			for i := range pods.Items {
				if podReady(&pods.Items[i]) {
					n++
				}
			}
			fewest = min(fewest, n)
			return false, nil
		})
	}()
	return func() int {
		cancel()
		<-done
		return fewest
	}
}

// editNode changes node name with f, failing on a conflicting write rather than overwriting it.
func editNode(t *testing.T, ctx context.Context, name string, f func(*corev1.Node)) {
	t.Helper()
	g := gomega.NewWithT(t)
	node := &corev1.Node{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, node)).To(gomega.Succeed())
	before := node.DeepCopy()
	f(node)
	g.Expect(k8s.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))).To(gomega.Succeed())
}

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
}

// A Deployment in an enforced namespace goes through the operator's webhooks (Deployment, then
// each Pod the ReplicaSet creates), its pods run on KWOK nodes with the digest a kubelet would
// report, and an evicted pod is replaced by its ReplicaSet.
func TestDeploymentRunsAndEvictedPodComesBack(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)

	g.Expect(k8s.Create(ctx, deployment(ns, "web", 2))).To(gomega.Succeed())
	var pods []corev1.Pod
	g.Eventually(func(g gomega.Gomega) {
		pods = readyPods(ctx, ns, "web")(g)
		g.Expect(pods).To(gomega.HaveLen(2))
	}, eventually, poll).Should(gomega.Succeed())
	for _, p := range pods {
		g.Expect(p.Spec.NodeName).To(gomega.HavePrefix("kwok-node-"))
		g.Expect(p.Status.ContainerStatuses[0].ImageID).To(gomega.Equal(image))
		g.Expect(p.OwnerReferences).To(gomega.ContainElement(gomega.HaveField("Kind", "ReplicaSet")))
	}

	victim := pods[0]
	eviction := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: victim.Name}}
	g.Expect(k8s.SubResource("eviction").Create(ctx, &victim, eviction)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "web")(g)
		g.Expect(ready).To(gomega.HaveLen(2))
		g.Expect(ready).NotTo(gomega.ContainElement(gomega.HaveField("Name", victim.Name)))
	}, eventually, poll).Should(gomega.Succeed(), "the ReplicaSet must replace the evicted pod")
}

// With the operator down, enforced namespaces fail closed (nothing unchecked gets in), while the
// control plane's namespaces keep working; when it comes back, so does the namespace.
func TestOperatorDownFailsClosedAndSparesTheControlPlane(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx)

	pod := func(ns string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("p")},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
		}
	}
	g.Expect(k8s.Create(ctx, pod(ns))).To(gomega.Succeed(), "operator up: admitted")

	mgr.Stop()
	t.Cleanup(func() {
		if !mgr.Running() {
			g.Expect(mgr.Start(context.Background())).To(gomega.Succeed())
		}
	})

	err := k8s.Create(ctx, pod(ns))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring("failed calling webhook")), "operator down: must fail closed")
	g.Expect(k8s.Create(ctx, pod("kube-system"))).To(gomega.Succeed(), "the control plane must not depend on the operator")
	g.Expect(k8s.Create(ctx, pod(fixityv1.OperatorNamespace))).To(gomega.Succeed(), "the operator must be able to restart itself")

	g.Expect(mgr.Start(ctx)).To(gomega.Succeed())
	g.Eventually(func() error { return k8s.Create(ctx, pod(ns)) }, eventually, poll).Should(gomega.Succeed())
}
