package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/test/builders"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

// poolTaint keeps every other test's pods off a node pool's nodes, so that cordoning and
// draining them disturbs nothing else.
const poolTaint = "e2e.fixity.dev/pool"

// kernel is the kernel a pool's nodes are created with; kernelPatched one applied in place.
const (
	kernel        = "6.1.0-28-cloud-amd64"
	kernelPatched = "6.1.0-29-cloud-amd64"
)

// nodePool adds n fake nodes labelled pool=<name> and tainted poolTaint=<name>, deleted when the
// test ends.
func nodePool(t *testing.T, ctx context.Context, n int) (string, []string) {
	t.Helper()
	g := gomega.NewWithT(t)
	pool := uniqueName("pool")
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%d", pool, i)
		_, err := env.AddNode(ctx, name, map[string]string{"pool": pool},
			[]corev1.Taint{{Key: poolTaint, Value: pool, Effect: corev1.TaintEffectNoSchedule}},
			corev1.NodeSystemInfo{
				KernelVersion: kernel, OSImage: "Debian GNU/Linux 12 (bookworm)", KubeletVersion: "v1.37.2",
				ContainerRuntimeVersion: "containerd://2.4.2", MachineID: "machine-" + name, SystemUUID: "uuid-" + name,
				BootID: "boot-1", OperatingSystem: "linux", Architecture: "amd64",
			})
		g.Expect(err).NotTo(gomega.HaveOccurred())
		names = append(names, name)
		t.Cleanup(func() {
			_ = k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
	}
	return pool, names
}

// nodePolicy creates a node policy selecting pool and waits until it is Ready and has seen
// every node of the pool.
func nodePolicy(t *testing.T, ctx context.Context, pool string, nodes int, edit ...func(*fixityv1.NodeImmutabilityPolicySpec)) *fixityv1.NodeImmutabilityPolicy {
	t.Helper()
	g := gomega.NewWithT(t)
	p := &fixityv1.NodeImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName(pool)},
		Spec: fixityv1.NodeImmutabilityPolicySpec{
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": pool}},
		},
	}
	for _, e := range edit {
		e(&p.Spec)
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, fixityv1.ReadyCondition)).To(gomega.BeTrue())
		g.Expect(p.Status.MatchedNodes).To(gomega.BeEquivalentTo(nodes))
	}, eventually, poll).Should(gomega.Succeed())
	return p
}

func baselineOf(ctx context.Context, node string) func(g gomega.Gomega) *fixityv1.NodeBaseline {
	return func(g gomega.Gomega) *fixityv1.NodeBaseline {
		b := &fixityv1.NodeBaseline{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: node}, b)).To(gomega.Succeed())
		return b
	}
}

func nodeNamed(ctx context.Context, name string) func(g gomega.Gomega) *corev1.Node {
	return func(g gomega.Gomega) *corev1.Node {
		n := &corev1.Node{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, n)).To(gomega.Succeed())
		return n
	}
}

// cordoned matches a node Fixity cordoned: unschedulable, tainted fixity.dev/drifted.
var cordoned = gomega.And(
	gomega.HaveField("Spec.Unschedulable", true),
	gomega.HaveField("Spec.Taints", gomega.ContainElement(gomega.HaveField("Key", fixityv1.DriftedTaint))))

func phase(p fixityv1.NodePhase) gomega.OmegaMatcher { return gomega.HaveField("Status.Phase", p) }

// setNodeInfo changes a node's nodeInfo in place, as a kubelet reports a new kernel or OS
// image after a patch on the machine.
func setNodeInfo(t *testing.T, ctx context.Context, name string, edit func(*corev1.NodeSystemInfo)) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func() error {
		n := &corev1.Node{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return err
		}
		before := n.DeepCopy()
		edit(&n.Status.NodeInfo)
		return k8s.Status().Patch(ctx, n, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	}, eventually, poll).Should(gomega.Succeed())
}

func withKernel(v string) func(*corev1.NodeSystemInfo) {
	return func(i *corev1.NodeSystemInfo) { i.KernelVersion = v }
}

// poolDeployment is a Deployment whose pods run only on pool's nodes.
func poolDeployment(ns, name, pool string, replicas int32) *appsv1.Deployment {
	d := deployment(ns, name, replicas)
	onPool(pool)(d)
	return d
}

// onPool makes a Deployment's pods run only on pool's nodes.
func onPool(pool string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.NodeSelector = map[string]string{"pool": pool}
		d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: poolTaint, Value: pool, Effect: corev1.TaintEffectNoSchedule}}
	}
}

func podsOn(ctx context.Context, ns, node string) func(g gomega.Gomega) []string {
	return func(g gomega.Gomega) []string {
		var pods corev1.PodList
		g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns))).To(gomega.Succeed())
		var out []string
		for _, p := range pods.Items {
			if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
				out = append(out, p.Name)
			}
		}
		return out
	}
}

func nodeEvents(ctx context.Context, name string) func(g gomega.Gomega) []string {
	return events(ctx, metav1.NamespaceDefault, name)
}

// A kernel changed in place on a node with no provisioner: the node is cordoned and tainted,
// its pods are evicted (their ReplicaSet brings them back on the other nodes), and it is left
// cordoned, reported NoProvisioner. The Events and the baseline show the recorded and observed
// kernels. Deleting the baseline accepts the node as it is: recorded again, cordon lifted.
func TestKernelChangedInPlaceIsDrainedAndReported(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 3)
	p := nodePolicy(t, ctx, pool, 3, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](50) })
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(gomega.And(phase(fixityv1.NodeClean),
			gomega.HaveField("Spec.NodeInfo.KernelVersion", kernel), gomega.HaveField("Spec.ProviderID", "kwok://"+n)))
	}
	// A recorded baseline, and the node policy, read as done to kstatus and Argo CD.
	script, err := builders.ArgoHealthCheck(root)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	for _, obj := range []client.Object{&fixityv1.NodeBaseline{ObjectMeta: metav1.ObjectMeta{Name: nodes[0]}}, p} {
		g.Expect(builders.JudgeLive(ctx, k8s, script, obj)).To(gomega.Equal(builders.Current), "%T %s", obj, obj.GetName())
	}
	ns := uniqueName("nodes")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, poolDeployment(ns, "web", pool, 3))).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.HaveLen(3))
	target := nodes[0]
	var onTarget []string
	for _, n := range nodes {
		if got := podsOn(ctx, ns, n)(g); len(got) > 0 {
			target, onTarget = n, got
			break
		}
	}

	setNodeInfo(t, ctx, target, withKernel(kernelPatched))

	g.Eventually(nodeNamed(ctx, target), eventually, poll).Should(cordoned)
	g.Eventually(baselineOf(ctx, target), eventually, poll).Should(gomega.And(
		phase(fixityv1.NodeCordoned),
		gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.NoProvisionerReason)),
		gomega.HaveField("Status.Drifted", gomega.ContainElement(gomega.And(
			gomega.HaveField("Check", fixityv1.CheckKernelVersion),
			gomega.HaveField("Recorded", kernel), gomega.HaveField("Observed", kernelPatched)))),
		gomega.HaveField("Spec.NodeInfo.KernelVersion", kernel)))
	g.Eventually(podsOn(ctx, ns, target), eventually, poll).Should(gomega.BeEmpty(), "the drifted node's pods %v are evicted", onTarget)
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.HaveLen(3), "and come back on the other nodes")
	g.Eventually(nodeEvents(ctx, target), eventually, poll).Should(gomega.ContainElements(
		gomega.ContainSubstring(fixityv1.EventNodeDrifted+": [policy "+p.Name+"] Node changed in place: KernelVersion: recorded \""+kernel+"\", observed \""+kernelPatched+"\""),
		gomega.HavePrefix(fixityv1.EventNodeCordoned+": "),
		gomega.HavePrefix(fixityv1.EventNoProvisioner+": "),
	))
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(p.Status.DriftedNodes).To(gomega.BeEquivalentTo(1))
		g.Expect(p.Status.ReplacingNodes).To(gomega.BeEquivalentTo(1))
		g.Expect(p.Status.ReplacedNodes).To(gomega.BeEquivalentTo(1))
	}, eventually, poll).Should(gomega.Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: target}, &corev1.Node{})).To(gomega.Succeed(), "the Node object is never deleted")

	// Accepting the node as it is.
	old := baselineOf(ctx, target)(g)
	g.Expect(k8s.Delete(ctx, old)).To(gomega.Succeed())
	g.Eventually(baselineOf(ctx, target), eventually, poll).Should(gomega.And(
		gomega.HaveField("UID", gomega.Not(gomega.Equal(old.UID))),
		gomega.HaveField("Spec.NodeInfo.KernelVersion", kernelPatched), phase(fixityv1.NodeClean)))
	g.Eventually(nodeNamed(ctx, target), eventually, poll).Should(gomega.And(
		gomega.HaveField("Spec.Unschedulable", false),
		gomega.HaveField("Spec.Taints", gomega.Not(gomega.ContainElement(gomega.HaveField("Key", fixityv1.DriftedTaint))))))
}

// With maxUnavailable 1, a second drifted node waits until the first is gone; a reboot alone is
// not drift; the breaker holds every node while too many are drifted.
func TestNodeBudgetBreakerAndReboot(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 4)
	p := nodePolicy(t, ctx, pool, 4, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action = fixityv1.NodeCordon
		s.MaxDriftedPercent = ptr.To[int32](50)
	})
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(phase(fixityv1.NodeClean))
	}

	// A reboot alone: judged (the kernel change after it is acted on) and left alone.
	setNodeInfo(t, ctx, nodes[3], func(i *corev1.NodeSystemInfo) { i.BootID = "boot-2" })
	setNodeInfo(t, ctx, nodes[0], withKernel(kernelPatched))
	g.Eventually(nodeNamed(ctx, nodes[0]), eventually, poll).Should(cordoned)
	g.Expect(baselineOf(ctx, nodes[3])(g)).To(phase(fixityv1.NodeClean))
	g.Expect(nodeNamed(ctx, nodes[3])(g)).NotTo(cordoned)

	// The second drifted node waits for the budget.
	setNodeInfo(t, ctx, nodes[1], withKernel(kernelPatched))
	g.Eventually(baselineOf(ctx, nodes[1]), eventually, poll).Should(gomega.And(phase(fixityv1.NodeDrifted),
		gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.BudgetExhaustedReason+": [policy "+p.Name+"] 1 of 1 nodes already cordoned"))))
	g.Eventually(nodeEvents(ctx, nodes[1]), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventNodeHeld + ": ")))
	g.Consistently(nodeNamed(ctx, nodes[1]), "3s", poll).ShouldNot(cordoned)

	// Three of four drifted (75%, over 50): the breaker opens.
	setNodeInfo(t, ctx, nodes[2], withKernel(kernelPatched))
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		c := meta.FindStatusCondition(p.Status.Conditions, fixityv1.RemediationAllowedCondition)
		g.Expect(c).NotTo(gomega.BeNil())
		g.Expect(c.Reason).To(gomega.Equal(fixityv1.TooManyDriftedReason))
		g.Expect(p.Status.DriftedNodes).To(gomega.BeEquivalentTo(3))
	}, eventually, poll).Should(gomega.Succeed())

	// The first node goes (its replacement done): the budget is free, but the breaker holds.
	g.Expect(k8s.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodes[0]}})).To(gomega.Succeed())
	g.Eventually(baselineOf(ctx, nodes[1]), eventually, poll).Should(
		gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.TooManyDriftedReason+": [policy "+p.Name+"] 2 of 3 matched nodes")))
	g.Expect(nodeNamed(ctx, nodes[1])(g)).NotTo(cordoned)

	// One kernel put back: 1 of 3 drifted, the breaker closes, the last drifted node goes out.
	setNodeInfo(t, ctx, nodes[2], withKernel(kernel))
	g.Eventually(nodeNamed(ctx, nodes[1]), eventually, poll).Should(cordoned)
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, fixityv1.RemediationAllowedCondition)).To(gomega.BeTrue())
	}, eventually, poll).Should(gomega.Succeed())
	g.Eventually(baselineOf(ctx, nodes[2]), eventually, poll).Should(phase(fixityv1.NodeClean))
}

// Audit and Report find and tell, and touch nothing; the most cautious of two policies wins.
func TestAuditAndReportTouchNoNode(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 2)
	audit := nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Mode = fixityv1.ModeAudit
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	replace := nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](100) })
	report := nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action = fixityv1.NodeReport
		s.Checks = []fixityv1.NodeCheck{fixityv1.CheckOSImage}
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	g.Expect(k8s.Delete(ctx, audit)).To(gomega.Succeed())
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(phase(fixityv1.NodeClean))
	}
	// OS image: both the Replace and the Report policy find it; Report wins.
	setNodeInfo(t, ctx, nodes[0], func(i *corev1.NodeSystemInfo) { i.OSImage = "Debian GNU/Linux 13 (trixie)" })
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(gomega.And(phase(fixityv1.NodeDrifted),
		gomega.HaveField("Status.Message", gomega.ContainSubstring("reported only"))))
	g.Eventually(events(ctx, metav1.NamespaceDefault, report.Name), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring("OSImage: recorded \"Debian GNU/Linux 12 (bookworm)\", observed \"Debian GNU/Linux 13 (trixie)\"")))
	g.Consistently(nodeNamed(ctx, nodes[0]), "3s", poll).ShouldNot(cordoned)

	// Audit: a kernel change under an Audit policy alone is reported, never acted on.
	g.Expect(k8s.Delete(ctx, replace)).To(gomega.Succeed())
	g.Expect(k8s.Delete(ctx, report)).To(gomega.Succeed())
	audit = nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Mode = fixityv1.ModeAudit
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	setNodeInfo(t, ctx, nodes[1], withKernel(kernelPatched))
	g.Eventually(nodeEvents(ctx, nodes[1]), eventually, poll).Should(gomega.ContainElement(
		gomega.ContainSubstring("[policy " + audit.Name + "] Node changed in place: KernelVersion")))
	g.Eventually(baselineOf(ctx, nodes[1]), eventually, poll).Should(phase(fixityv1.NodeDrifted))
	g.Consistently(nodeNamed(ctx, nodes[1]), "3s", poll).ShouldNot(cordoned)
}

// A PodDisruptionBudget keeps the drain from evicting the last pod: reported, retried, and
// after drainTimeout the node is reported DrainStuck, still cordoned, the pod never forced out.
func TestPodDisruptionBudgetBlocksTheDrain(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 1)
	nodePolicy(t, ctx, pool, 1, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action = fixityv1.NodeDrain
		s.MaxDriftedPercent = ptr.To[int32](100)
		s.DrainTimeout = &metav1.Duration{Duration: 10e9}
	})
	ns := uniqueName("nodes")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, poolDeployment(ns, "db", pool, 1))).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "db"), eventually, poll).Should(gomega.HaveLen(1))
	noDisruptions(t, ctx, ns, "db", 1)
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(phase(fixityv1.NodeClean))

	setNodeInfo(t, ctx, nodes[0], withKernel(kernelPatched))
	g.Eventually(nodeEvents(ctx, nodes[0]), eventually, poll).Should(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventDrainBlocked+": "), gomega.ContainSubstring("disruption budget"))))
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(gomega.And(phase(fixityv1.NodeDrainStuck),
		gomega.HaveField("Status.Message", gomega.ContainSubstring("nothing is forced"))))
	g.Eventually(nodeEvents(ctx, nodes[0]), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDrainStuck + ": ")))
	g.Expect(nodeNamed(ctx, nodes[0])(g)).To(cordoned)
	g.Expect(readyPods(ctx, ns, "db")(g)).To(gomega.HaveLen(1), "the pod the budget keeps is never forced out")
}

// nodeClaimFor creates a Karpenter NodeClaim (Karpenter's own CRD) whose node is name, with the
// termination finalizer Karpenter puts on every NodeClaim: it stays, deleting, until Karpenter
// has drained and terminated its node.
func nodeClaimFor(t *testing.T, ctx context.Context, name string) *unstructured.Unstructured {
	t.Helper()
	g := gomega.NewWithT(t)
	nc := karpenterObject("NodeClaim", name)
	nc.SetFinalizers([]string{"karpenter.sh/termination"})
	g.Expect(unstructuredSet(nc.Object, map[string]any{
		"nodeClassRef": map[string]any{"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
		"requirements": []any{},
	}, "spec")).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, nc)).To(gomega.Succeed())
	g.Expect(unstructuredSet(nc.Object, map[string]any{"providerID": "kwok://" + name, "nodeName": name}, "status")).To(gomega.Succeed())
	g.Expect(k8s.Status().Update(ctx, nc)).To(gomega.Succeed())
	t.Cleanup(func() {
		ctx := context.Background()
		if k8s.Get(ctx, client.ObjectKeyFromObject(nc), nc) == nil {
			nc.SetFinalizers(nil)
			_ = k8s.Update(ctx, nc)
			_ = k8s.Delete(ctx, nc)
		}
	})
	return nc
}

// A node Karpenter provisioned is handed to Karpenter: its NodeClaim is deleted, the Node is not.
func TestReplaceDeletesTheNodeClaim(t *testing.T) {
	requireCRD(t, "nodeclaims.karpenter.sh")
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 2)
	nc := nodeClaimFor(t, ctx, nodes[0])
	p := nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](50) })
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(phase(fixityv1.NodeClean))

	setNodeInfo(t, ctx, nodes[0], func(i *corev1.NodeSystemInfo) { i.ContainerRuntimeVersion = "containerd://2.4.3" })
	g.Eventually(func(g gomega.Gomega) *metav1.Time {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(nc), nc)).To(gomega.Succeed())
		return nc.GetDeletionTimestamp()
	}, eventually, poll).ShouldNot(gomega.BeNil(), "the NodeClaim is deleted for Karpenter to replace the node")
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(gomega.And(phase(fixityv1.NodeReplacing),
		gomega.HaveField("Status.Message", gomega.ContainSubstring("NodeClaim "+nodes[0]))))
	g.Expect(nodeNamed(ctx, nodes[0])(g)).To(cordoned)
	g.Eventually(nodeEvents(ctx, nodes[0]), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventNodeReplacing + ": Asked NodeClaim")))
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
		g.Expect(p.Status.ReplacedNodes).To(gomega.BeEquivalentTo(1))
	}, eventually, poll).Should(gomega.Succeed())
}

// A node of a Cluster API Machine is handed to Cluster API: the Machine gets
// cluster.x-k8s.io/remediate-machine; one being updated in place by Cluster API is left alone.
func TestReplaceAnnotatesTheMachine(t *testing.T) {
	requireCRD(t, "machines.cluster.x-k8s.io")
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 4)
	ns := uniqueName("capi")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	machine := machineFor(t, ctx, ns, nodes[0], nil)
	updating := machineFor(t, ctx, ns, nodes[1], map[string]string{"in-place-updates.internal.cluster.x-k8s.io/update-in-progress": ""})
	nodePolicy(t, ctx, pool, 4, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.MaxDriftedPercent = ptr.To[int32](50)
		s.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	})
	for _, n := range nodes[:2] {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(phase(fixityv1.NodeClean))
		setNodeInfo(t, ctx, n, func(i *corev1.NodeSystemInfo) { i.KubeletVersion = "v1.37.3" })
	}
	g.Eventually(func(g gomega.Gomega) map[string]string {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(machine), machine)).To(gomega.Succeed())
		return machine.GetAnnotations()
	}, eventually, poll).Should(gomega.HaveKey(fixityv1.ClusterAPIRemediateMachineAnnotation))
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(phase(fixityv1.NodeReplacing))
	g.Eventually(baselineOf(ctx, nodes[1]), eventually, poll).Should(
		gomega.HaveField("Status.Message", gomega.ContainSubstring("is being updated in place by Cluster API")))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(updating), updating)).To(gomega.Succeed())
	g.Expect(updating.GetAnnotations()).NotTo(gomega.HaveKey(fixityv1.ClusterAPIRemediateMachineAnnotation))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: nodes[0]}, &corev1.Node{})).To(gomega.Succeed(), "the Node object is never deleted")
}

// requireCRD fails the test unless the CRD is installed (make provisioner-crds puts it in
// bin/crds, which the cluster installs).
func requireCRD(t *testing.T, name string) {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, crd); err != nil {
		t.Fatalf("CRD %s is not installed (run make provisioner-crds): %v", name, err)
	}
}

func karpenterObject(kind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(nodedrift.NodeClaimKind.GroupVersion().WithKind(kind))
	u.SetName(name)
	return u
}

func unstructuredSet(obj map[string]any, value map[string]any, path ...string) error {
	return unstructured.SetNestedMap(obj, value, path...)
}

// machineFor creates a Cluster API Machine (its own CRD) in ns whose status.nodeRef is node.
func machineFor(t *testing.T, ctx context.Context, ns, node string, annotations map[string]string) *unstructured.Unstructured {
	t.Helper()
	g := gomega.NewWithT(t)
	m := &unstructured.Unstructured{}
	m.SetGroupVersionKind(nodedrift.MachineKind)
	m.SetNamespace(ns)
	m.SetName(node)
	m.SetAnnotations(annotations)
	g.Expect(unstructuredSet(m.Object, map[string]any{
		"clusterName":       "workload",
		"bootstrap":         map[string]any{"dataSecretName": "bootstrap"},
		"infrastructureRef": map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachine", "name": node},
		"providerID":        "kwok://" + node,
	}, "spec")).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, m)).To(gomega.Succeed())
	g.Expect(unstructuredSet(m.Object, map[string]any{"nodeRef": map[string]any{"name": node}}, "status")).To(gomega.Succeed())
	g.Expect(k8s.Status().Update(ctx, m)).To(gomega.Succeed())
	return m
}

// leaseHolder is who holds the manager's leader lease now.
func leaseHolder(ctx context.Context) func(g gomega.Gomega) string {
	return func(g gomega.Gomega) string {
		l := &coordinationv1.Lease{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: fixityv1.OperatorNamespace, Name: "manager.fixity.dev"}, l)).To(gomega.Succeed())
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}
}

// Two manager replicas; the leader is killed mid-drain. The new leader goes on with the same
// drain (no second cordon, no second drain started) and never takes a second node out while
// the budget is spent.
func TestLeaderKilledMidDrainKeepsTheBudget(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	port, err := cluster.FreePort()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	standby := cluster.NewManager(env, managerBin, mgr.Log+".standby")
	// Its own webhook port: the webhook configurations point at the first replica's.
	standby.Args = append(standby.Args, "--webhook-port", strconv.Itoa(port), "--replacement-timeout", replacementTimeout.String())
	g.Expect(standby.Start(ctx)).To(gomega.Succeed())
	t.Cleanup(func() {
		if !mgr.Running() {
			_ = mgr.Start(context.Background())
		}
		standby.Stop()
	})
	leader := leaseHolder(ctx)(g)
	g.Expect(leader).NotTo(gomega.BeEmpty())

	pool, nodes := nodePool(t, ctx, 2)
	nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](100) })
	ns := uniqueName("nodes")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, poolDeployment(ns, "db", pool, 1))).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "db"), eventually, poll).Should(gomega.HaveLen(1))
	pdb := noDisruptions(t, ctx, ns, "db", 1)
	target, other := nodes[0], nodes[1]
	if readyPods(ctx, ns, "db")(g)[0].Spec.NodeName != target {
		target, other = other, target
	}
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(phase(fixityv1.NodeClean))
	}

	setNodeInfo(t, ctx, target, withKernel(kernelPatched))
	g.Eventually(baselineOf(ctx, target), eventually, poll).Should(gomega.And(phase(fixityv1.NodeDraining),
		gomega.HaveField("Status.Message", gomega.ContainSubstring("disruption budget"))))
	setNodeInfo(t, ctx, other, withKernel(kernelPatched))
	g.Eventually(baselineOf(ctx, other), eventually, poll).Should(
		gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.BudgetExhaustedReason)))

	mgr.Kill()
	g.Eventually(leaseHolder(ctx), 2*eventually, poll).ShouldNot(gomega.Equal(leader), "the standby takes the lease")
	// The new leader is at work: it records the baseline of a node that joins the pool.
	joined := pool + "-joined"
	_, err = env.AddNode(ctx, joined, map[string]string{"pool": pool},
		[]corev1.Taint{{Key: poolTaint, Value: pool, Effect: corev1.TaintEffectNoSchedule}}, corev1.NodeSystemInfo{KernelVersion: kernel})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: joined}})
	})
	g.Eventually(baselineOf(ctx, joined), eventually, poll).Should(phase(fixityv1.NodeClean))
	g.Consistently(nodeNamed(ctx, other), "5s", poll).ShouldNot(cordoned)
	g.Expect(baselineOf(ctx, target)(g)).To(phase(fixityv1.NodeDraining))

	// The budget lets the pod go: the same drain finishes.
	g.Expect(k8s.Delete(ctx, pdb)).To(gomega.Succeed())
	g.Eventually(baselineOf(ctx, target), eventually, poll).Should(gomega.And(phase(fixityv1.NodeCordoned),
		gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.NoProvisionerReason))))
	cordons := 0
	for _, e := range nodeEvents(ctx, target)(g) {
		if strings.HasPrefix(e, fixityv1.EventNodeCordoned+": ") {
			cordons++
		}
	}
	g.Expect(cordons).To(gomega.Equal(1), "one cordon, one drain, across the leader change")
	g.Expect(nodeNamed(ctx, other)(g)).NotTo(cordoned, "the drained node still counts until it is gone")

	// Gone: the next drifted node goes out.
	g.Expect(k8s.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: target}})).To(gomega.Succeed())
	g.Eventually(nodeNamed(ctx, other), eventually, poll).Should(cordoned)
}

// Each opt-in check, on a node of its own, triggers the policy's action, and the finding names
// its check: another machine behind the Node, a reboot, a watched label changed, a recorded
// taint removed.
func TestEachNodeCheckTriggersTheAction(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 4)
	for _, n := range nodes {
		node := nodeNamed(ctx, n)(g)
		before := node.DeepCopy()
		node.Labels["team"] = "shop"
		g.Expect(k8s.Patch(ctx, node, client.MergeFrom(before))).To(gomega.Succeed())
	}
	nodePolicy(t, ctx, pool, 4, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Checks = []fixityv1.NodeCheck{fixityv1.CheckIdentity, fixityv1.CheckReboot, fixityv1.CheckLabels, fixityv1.CheckTaints}
		s.WatchedLabels = []string{"team"}
		s.Action = fixityv1.NodeCordon
		s.MaxUnavailable = ptr.To(intstr.FromString("100%"))
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(gomega.And(phase(fixityv1.NodeClean),
			gomega.HaveField("Spec.Labels", gomega.HaveKeyWithValue("team", "shop"))))
	}
	setNodeInfo(t, ctx, nodes[0], func(i *corev1.NodeSystemInfo) { i.MachineID = "another-machine" })
	setNodeInfo(t, ctx, nodes[1], func(i *corev1.NodeSystemInfo) { i.BootID = "boot-2" })
	editNode(t, ctx, nodes[2], func(n *corev1.Node) { n.Labels["team"] = "ads" })
	editNode(t, ctx, nodes[3], func(n *corev1.Node) { n.Spec.Taints = nil })
	for i, want := range []fixityv1.NodeCheck{fixityv1.CheckIdentity, fixityv1.CheckReboot, fixityv1.CheckLabels, fixityv1.CheckTaints} {
		g.Eventually(nodeNamed(ctx, nodes[i]), eventually, poll).Should(cordoned, "%s", want)
		g.Eventually(baselineOf(ctx, nodes[i]), eventually, poll).Should(gomega.And(phase(fixityv1.NodeCordoned),
			gomega.HaveField("Status.Drifted", gomega.ConsistOf(gomega.HaveField("Check", want)))), "%s", want)
	}
}

// karpenterYAML is a KWOKNodeClass and a NodePool whose nodes carry pool=<pool> and the pool
// taint, so that only this test's pods ask Karpenter for nodes.
func karpenterYAML(pool string) string {
	return fmt.Sprintf(`apiVersion: karpenter.kwok.sh/v1alpha1
kind: KWOKNodeClass
metadata: {name: %[1]s}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: %[1]s}
spec:
  template:
    metadata:
      labels: {pool: %[1]s}
    spec:
      requirements:
      - {key: kubernetes.io/os, operator: In, values: ["linux"]}
      - {key: kubernetes.io/arch, operator: In, values: ["amd64"]}
      - {key: karpenter.sh/capacity-type, operator: In, values: ["on-demand"]}
      taints:
      - {key: %[2]s, value: %[1]s, effect: NoSchedule}
      nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: %[1]s}
      expireAfter: Never
  limits: {cpu: 100}
  disruption: {consolidationPolicy: WhenEmpty, consolidateAfter: Never}
`, pool, poolTaint)
}

// A real Karpenter (its KWOK provider) brings a node for a Deployment; the node's kernel changes
// in place; Fixity deletes its NodeClaim, Karpenter drains it through the Eviction API and
// terminates it, and brings a fresh node where the pods run again. The Node object itself is
// deleted by Karpenter, never by Fixity.
func TestKarpenterReplacesADriftedNode(t *testing.T) {
	requireCRD(t, "nodeclaims.karpenter.sh")
	g := gomega.NewWithT(t)
	ctx := context.Background()
	bin := filepath.Join(root, "bin", "karpenter", "karpenter-kwok")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Karpenter's KWOK provider is not built (run make karpenter): %v", err)
	}
	pool := uniqueName("karp")
	karp, err := env.StartKarpenter(ctx, bin)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	apply := func(verb string) {
		cmd := env.Kubectl(verb, "-f", "-")
		cmd.Stdin = strings.NewReader(karpenterYAML(pool))
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(gomega.HaveOccurred(), "%s", out)
	}
	t.Cleanup(func() {
		// Karpenter removes its nodes when its NodePool goes; then it stops.
		cmd := env.Kubectl("delete", "--wait=true", "--timeout=60s", "-f", "-")
		cmd.Stdin = strings.NewReader(karpenterYAML(pool))
		_ = cmd.Run()
		karp.Stop()
	})
	apply("apply")
	nodePolicy(t, ctx, pool, 0, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](100) })
	ns := uniqueName("nodes")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, poolDeployment(ns, "web", pool, 2))).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "web"), 2*eventually, poll).Should(gomega.HaveLen(2), "Karpenter brings a node (see %s)", karp.Log)
	first := readyPods(ctx, ns, "web")(g)[0].Spec.NodeName
	g.Eventually(baselineOf(ctx, first), eventually, poll).Should(gomega.And(phase(fixityv1.NodeClean),
		gomega.HaveField("Spec.ProviderID", gomega.HavePrefix("kwok://"))))
	claims := &unstructured.UnstructuredList{}
	claims.SetGroupVersionKind(nodedrift.NodeClaimKind.GroupVersion().WithKind("NodeClaimList"))

	setNodeInfo(t, ctx, first, withKernel(kernelPatched))

	g.Eventually(nodeEvents(ctx, first), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventNodeReplacing + ": Asked NodeClaim")))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: first}, &corev1.Node{}))
	}, 2*eventually, poll).Should(gomega.BeTrue(), "Karpenter drains and terminates the drifted node")
	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, ns, "web")(g)
		g.Expect(pods).To(gomega.HaveLen(2))
		for _, p := range pods {
			g.Expect(p.Spec.NodeName).NotTo(gomega.Equal(first))
			g.Expect(nodeNamed(ctx, p.Spec.NodeName)(g).Labels).To(gomega.HaveKeyWithValue("pool", pool))
		}
	}, 2*eventually, poll).Should(gomega.Succeed(), "the pods run again on a fresh node Karpenter brought")
	fresh := readyPods(ctx, ns, "web")(g)[0].Spec.NodeName
	g.Eventually(baselineOf(ctx, fresh), eventually, poll).Should(gomega.And(phase(fixityv1.NodeClean),
		gomega.HaveField("Spec.NodeInfo.KernelVersion", gomega.Not(gomega.Equal(kernelPatched)))))
	g.Expect(k8s.List(ctx, claims)).To(gomega.Succeed())
	for _, nc := range claims.Items {
		name, _, _ := unstructured.NestedString(nc.Object, "status", "nodeName")
		g.Expect(name).NotTo(gomega.Equal(first), "the drifted node's NodeClaim is gone")
	}
}

// A drain recreates elsewhere a bare pod that Fixity recreates anyway (admitted by Fixity, under
// a pod policy that replaces drifted pods), and the node drift metrics count what happened.
func TestDrainRecreatesABarePodFixityAdmitted(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, _ := nodePool(t, ctx, 2)
	p := nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action = fixityv1.NodeDrain
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo", Labels: map[string]string{"app": "solo"}},
		Spec: corev1.PodSpec{
			Containers:   []corev1.Container{{Name: "web", Image: pushed(t, "shop/solo")}},
			NodeSelector: map[string]string{"pool": pool},
			Tolerations:  []corev1.Toleration{{Key: poolTaint, Value: pool, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	g.Expect(k8s.Create(ctx, pod)).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "solo"), eventually, poll).Should(gomega.HaveLen(1))
	on := readyPods(ctx, ns, "solo")(g)[0]
	g.Eventually(baselineOf(ctx, on.Spec.NodeName), eventually, poll).Should(phase(fixityv1.NodeClean))

	setNodeInfo(t, ctx, on.Spec.NodeName, withKernel(kernelPatched))

	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, ns, "solo")(g)
		g.Expect(pods).To(gomega.HaveLen(1))
		g.Expect(pods[0].UID).NotTo(gomega.Equal(on.UID))
		g.Expect(pods[0].Spec.NodeName).NotTo(gomega.Equal(on.Spec.NodeName))
	}, eventually, poll).Should(gomega.Succeed(), "the bare pod is recreated on the other node")
	g.Eventually(baselineOf(ctx, on.Spec.NodeName), eventually, poll).Should(gomega.And(phase(fixityv1.NodeCordoned),
		gomega.HaveField("Status.Message", gomega.HavePrefix("Drained"))))
	g.Eventually(nodeEvents(ctx, on.Spec.NodeName), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventNodeDrained + ": ")))
	g.Eventually(scrape, eventually, poll).Should(gomega.And(
		gomega.ContainSubstring(fmt.Sprintf(`%s{check="KernelVersion",policy=%q} 1`, metrics.NodeDriftDetectedName, p.Name)),
		gomega.ContainSubstring(fmt.Sprintf(`%s{check="KernelVersion",policy=%q} 1`, metrics.NodesDriftedName, p.Name)),
		gomega.ContainSubstring(fmt.Sprintf(`%s{policy=%q} 1`, metrics.NodesReplacingName, p.Name)),
		gomega.ContainSubstring(fmt.Sprintf(`%s{policy=%q} 0`, metrics.NodeBreakerOpenName, p.Name)),
	))
}

// A drifted node whose pods could not come back (their template's image is no longer signed by a
// key the pod policy trusts) is not drained: draining it would take the workload down. It is
// held, the message says what to fix, and once a signed image is rolled out the node goes.
func TestNodeIsKeptWhileItsPodsWouldNotComeBack(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, _ := nodePool(t, ctx, 2)
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ns := uniqueName("legacy")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, poolDeployment(ns, "web", pool, 1))).To(gomega.Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep)).To(gomega.Succeed())
	before := dep.DeepCopy()
	dep.Spec.Template.Spec.Containers[0].Image = pushed(t, "legacy/old")
	g.Expect(k8s.Patch(ctx, dep, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "web")(g)
		g.Expect(ready).To(gomega.HaveLen(1))
		g.Expect(ready[0].Spec.Containers[0].Image).To(gomega.Equal(dep.Spec.Template.Spec.Containers[0].Image))
	}, eventually, poll).Should(gomega.Succeed())
	// Now signatures are required (pod drift only reports, so that the node is what is judged).
	signingPolicy(t, ctx, ns, key, func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.Action = fixityv1.DriftReport })
	labelIntoPolicy(t, ctx, ns, ns)
	nodePolicy(t, ctx, pool, 2, func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Action = fixityv1.NodeDrain
		s.MaxDriftedPercent = ptr.To[int32](100)
	})
	on := readyPods(ctx, ns, "web")(g)[0]
	g.Eventually(baselineOf(ctx, on.Spec.NodeName), eventually, poll).Should(phase(fixityv1.NodeClean))

	setNodeInfo(t, ctx, on.Spec.NodeName, withKernel(kernelPatched))

	g.Eventually(baselineOf(ctx, on.Spec.NodeName), eventually, poll).Should(gomega.And(phase(fixityv1.NodeDrifted),
		gomega.HaveField("Status.Message", gomega.And(
			gomega.HavePrefix(fixityv1.ReplacementWouldBeDeniedReason+": pod "+ns+"/"+on.Name+" would not come back"),
			gomega.ContainSubstring("is not signed by enough trusted authorities"),
			gomega.ContainSubstring("sign the image or roll out a signed one")))))
	g.Eventually(nodeEvents(ctx, on.Spec.NodeName), eventually, poll).Should(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventNodeHeld+": "), gomega.ContainSubstring(fixityv1.ReplacementWouldBeDeniedReason))))
	g.Consistently(nodeNamed(ctx, on.Spec.NodeName), "3s", poll).ShouldNot(cordoned)
	g.Expect(gone(ctx, on)()).To(gomega.BeFalse(), "the pod keeps running")

	// The fix the message asks for: a signed image, rolled out. Then the node is drained.
	d, err := reg.PushRandomImage(ctx, "legacy/new", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, d, key)).To(gomega.Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, dep)).To(gomega.Succeed())
	before = dep.DeepCopy()
	dep.Spec.Template.Spec.Containers[0].Image = d.String()
	g.Expect(k8s.Patch(ctx, dep, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(baselineOf(ctx, on.Spec.NodeName), eventually, poll).Should(gomega.And(phase(fixityv1.NodeCordoned),
		gomega.HaveField("Status.Message", gomega.HavePrefix("Drained"))))
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.ContainElement(
		gomega.HaveField("Spec.Containers", gomega.ContainElement(gomega.HaveField("Image", d.String())))))
}

// A replacement that never comes: a drained node's machine is gone and nothing joins in its
// place. The next drifted node is not taken out (the pool would shrink again); once a node joins
// the pool, it is.
func TestTheNextNodeWaitsForAReplacementThatNeverCame(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	pool, nodes := nodePool(t, ctx, 3)
	p := nodePolicy(t, ctx, pool, 3, func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxDriftedPercent = ptr.To[int32](100) })
	for _, n := range nodes {
		g.Eventually(baselineOf(ctx, n), eventually, poll).Should(phase(fixityv1.NodeClean))
	}
	setNodeInfo(t, ctx, nodes[0], withKernel(kernelPatched))
	g.Eventually(baselineOf(ctx, nodes[0]), eventually, poll).Should(gomega.HaveField("Status.Message", gomega.HavePrefix(fixityv1.NoProvisionerReason)))
	g.Expect(k8s.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodes[0]}})).To(gomega.Succeed())

	setNodeInfo(t, ctx, nodes[1], withKernel(kernelPatched))
	g.Eventually(baselineOf(ctx, nodes[1]), eventually, poll).Should(gomega.HaveField("Status.Message",
		gomega.HavePrefix(fixityv1.ReplacementPendingReason+": [policy "+p.Name+"] 2 healthy nodes and 0 out, of the 3 before the last replacement")))
	g.Consistently(nodeNamed(ctx, nodes[1]), "3s", poll).ShouldNot(cordoned)

	joined := pool + "-joined"
	_, err := env.AddNode(ctx, joined, map[string]string{"pool": pool},
		[]corev1.Taint{{Key: poolTaint, Value: pool, Effect: corev1.TaintEffectNoSchedule}}, corev1.NodeSystemInfo{KernelVersion: kernel})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: joined}})
	})
	g.Eventually(nodeNamed(ctx, nodes[1]), eventually, poll).Should(cordoned, "the pool is whole again: the next node goes")
}
