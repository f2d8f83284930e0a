package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

// onRealNode makes a Deployment's pods run on the real node (kubelet and containerd), with a
// short grace period: the runnable image stops at once on SIGTERM.
func onRealNode(d *appsv1.Deployment) {
	d.Spec.Template.Spec.NodeSelector = map[string]string{cluster.RealNodeLabel: "true"}
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{cluster.RealNodeToleration()}
	d.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
}

// managerLogOnFailure prints, if t fails, the manager's last log lines about namespace ns.
func managerLogOnFailure(t *testing.T, ns string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		data, _ := os.ReadFile(mgr.Log)
		var mine []string
		for l := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(l, ns) {
				mine = append(mine, l)
			}
		}
		t.Logf("manager log about %s:\n%s", ns, strings.Join(mine[max(0, len(mine)-60):], "\n"))
	})
}

// replacementOf returns the one Ready pod of old's app ("app" label) once it is another pod
// than old.
func replacementOf(ctx context.Context, old corev1.Pod) func(g gomega.Gomega) corev1.Pod {
	return func(g gomega.Gomega) corev1.Pod {
		ready := readyPods(ctx, old.Namespace, old.Labels["app"])(g)
		g.Expect(ready).To(gomega.HaveLen(1))
		g.Expect(ready[0].UID).NotTo(gomega.Equal(old.UID))
		return ready[0]
	}
}

// runnableImage pushes an image the real node can run, named repo:tag, and returns its digest
// reference.
func runnableImage(t *testing.T, ctx context.Context, repo, tag string) string {
	t.Helper()
	d, err := reg.PushRunnableImage(ctx, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Exec on a real kubelet: without a grant Fixity denies it; under one the command really runs
// in the container and its output comes back; when the grant ends the pod is replaced, and its
// replacement really starts on the real node.
func TestRealNodeExecUnderAGrant(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	// One pod of one: a breaker at 50 % would hold it.
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	img := runnableImage(t, ctx, "real/exec", "v1")
	pods := rollOut(t, ctx, ns, "web", 1, img, onRealNode)
	pod := pods[0]
	managerLogOnFailure(t, ns)
	g.Expect(pod.Spec.NodeName).To(gomega.Equal(env.RealNodeName))

	out, err := alice.kubectl("exec", "-n", ns, pod.Name, "--", "cat", "/etc/fixity-image")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(deniedBy))

	out, err = alice.kubectlStdin(grantManifest(ns, "inc-7", pod.Name, "Exec", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(getGrant(ctx, ns, "inc-7"), eventually, poll).Should(gomega.HaveField("Status.Phase", fixityv1.GrantActive))
	out, err = alice.kubectl("exec", "-n", ns, pod.Name, "--", "cat", "/etc/fixity-image")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(strings.TrimSpace(out)).To(gomega.Equal("real/exec:v1"), "the command ran in the container")
	tainted := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pod), tainted)).To(gomega.Succeed())
	g.Expect(tainted.Annotations).To(gomega.HaveKeyWithValue(fixityv1.TaintedAnnotation,
		fmt.Sprintf("%s: exec by alice under grant %s/inc-7", fixityv1.CheckInteractiveAccess, ns)))

	// The grant ends: the pod that was entered is replaced by a fresh one, which really runs.
	out, err = alice.kubectl("delete", "-n", ns, "accessgrant/inc-7", "--wait=true")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(replacementOf(ctx, pod), eventually, poll).Should(gomega.And(
		gomega.HaveField("Spec.NodeName", env.RealNodeName),
		gomega.HaveField("Status.ContainerStatuses", gomega.ConsistOf(gomega.HaveField("State.Running", gomega.Not(gomega.BeNil()))))))
	g.Eventually(events(ctx, ns, pod.Name), eventually, poll).Should(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventDriftDetected+": "), gomega.ContainSubstring(string(fixityv1.CheckInteractiveAccess)))))
}

// readOnlyRootFilesystem: Require holds on a real runtime: the admitted container cannot write
// its root filesystem, and can write its emptyDir.
func TestRealNodeReadOnlyRootFilesystem(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.ReadOnlyRootFilesystem = fixityv1.Require })
	img := runnableImage(t, ctx, "real/readonly", "v1")
	probe := "for f in /written /scratch/written; do if touch $f 2>/dev/null; then echo $f: writable; else echo $f: read-only; fi; done; " +
		"trap 'exit 0' TERM; while true; do sleep 1; done"
	pods := rollOut(t, ctx, ns, "web", 1, img, onRealNode, func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Command = []string{"/bin/sh", "-c", probe}
		c.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
		d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	})
	g.Eventually(func(g gomega.Gomega) {
		out, err := env.Kubectl("logs", "-n", ns, pods[0].Name).CombinedOutput()
		g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
		g.Expect(string(out)).To(gomega.And(gomega.ContainSubstring("/written: read-only"), gomega.ContainSubstring("/scratch/written: writable")))
	}, eventually, poll).Should(gomega.Succeed())
}

// kubectl debug on a real kubelet: under a Debug grant the ephemeral container really starts and
// runs; when the grant ends the pod is replaced.
func TestRealNodeDebugStartsAnEphemeralContainer(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	img := runnableImage(t, ctx, "real/debug", "v1")
	managerLogOnFailure(t, ns)
	pod := rollOut(t, ctx, ns, "web", 1, img, onRealNode)[0]

	debug := []string{"debug", "-n", ns, "pod/" + pod.Name, "--image=" + img, "--profile=baseline", "--container=dbg", "--", "cat", "/etc/fixity-image"}
	out, err := alice.kubectl(debug...)
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("debug (ephemeral container) into pod " + pod.Name + " is denied"))

	out, err = alice.kubectlStdin(grantManifest(ns, "dbg", pod.Name, "Debug", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(getGrant(ctx, ns, "dbg"), eventually, poll).Should(gomega.HaveField("Status.Phase", fixityv1.GrantActive))
	out, err = alice.kubectl(debug...)
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	// The kubelet ran it: it exited 0 after printing the image's name.
	g.Eventually(func(g gomega.Gomega) {
		live := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pod), live)).To(gomega.Succeed())
		g.Expect(live.Status.EphemeralContainerStatuses).To(gomega.ConsistOf(gomega.And(
			gomega.HaveField("Name", "dbg"),
			gomega.HaveField("State.Terminated", gomega.And(gomega.Not(gomega.BeNil()), gomega.HaveField("ExitCode", int32(0)))))))
	}, eventually, poll).Should(gomega.Succeed())
	logs, err := env.Kubectl("logs", "-n", ns, pod.Name, "-c", "dbg").CombinedOutput()
	g.Expect(err).NotTo(gomega.HaveOccurred(), string(logs))
	g.Expect(strings.TrimSpace(string(logs))).To(gomega.Equal("real/debug:v1"))

	out, err = alice.kubectl("delete", "-n", ns, "accessgrant/dbg", "--wait=true")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(replacementOf(ctx, pod), eventually, poll).Should(gomega.HaveField("Spec.EphemeralContainers", gomega.BeEmpty()))
}

// imageID as containerd reports it: a pod pinned by an index digest and one pinned by its
// platform image's digest both run on the real node, and neither is found drifted by
// ImageDigest, whatever form of the digest the runtime writes.
func TestRealNodeImageIDIsNoFalseDrift(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.Action = fixityv1.DriftReport })
	index, amd64, err := reg.PushRunnableIndex(ctx, "real/multiarch", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	imageDigest := fixityv1.DriftRulePrefix + string(fixityv1.CheckImageDigest)
	for name, img := range map[string]string{"by-index": index.String(), "by-platform": amd64.String()} {
		pod := rollOut(t, ctx, ns, name, 1, img, onRealNode)[0]
		g.Expect(pod.Status.ContainerStatuses[0].ImageID).NotTo(gomega.BeEmpty(), "containerd reports the image it runs")
		t.Logf("%s: image %s, imageID %s", name, img, pod.Status.ContainerStatuses[0].ImageID)
		// The operator has judged the running pod (its report says so) and found no drift.
		g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Results",
			gomega.ContainElement(result(ns, imageDigest, pod.Name, "pass"))))
		g.Consistently(events(ctx, ns, pod.Name), "3s", poll).ShouldNot(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected)))
	}
}

// WritableLayer on a real kubelet's stats: a container that writes beyond the limit outside its
// volumes is found, with the bytes in the event, and replaced; one that writes as much into its
// emptyDir is not.
func TestRealNodeWritableLayer(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100), func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Drift.Checks = fixityv1.AllDriftChecks
		s.Drift.WritableLayerLimit = new(resource.MustParse("1Mi"))
	})
	managerLogOnFailure(t, ns)
	img := runnableImage(t, ctx, "real/writer", "v1")
	writes := func(path string) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) {
			c := &d.Spec.Template.Spec.Containers[0]
			c.Command = []string{"/bin/sh", "-c", "dd if=/dev/zero of=" + path + " bs=1M count=4 2>/dev/null; " + strings.Join(registry.RunnableCommand[2:], " ")}
			c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
			d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}
	}
	scratch := rollOut(t, ctx, ns, "scratch", 1, img, onRealNode, writes("/scratch/big"))[0]
	writer := rollOut(t, ctx, ns, "writer", 1, img, onRealNode, writes("/big"))[0]

	g.Eventually(events(ctx, ns, writer.Name), eventually, poll).Should(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventDriftDetected+": "),
		gomega.MatchRegexp(`WritableLayer: container "web" wrote 4[0-9]{6} bytes \([0-9]+ inodes\) into its writable layer, outside its volumes: more than writableLayerLimit 1Mi`))))
	g.Eventually(gone(ctx, writer), eventually, poll).Should(gomega.BeTrue(), "replaced like any drift")
	g.Eventually(scrape, eventually, poll).Should(gomega.MatchRegexp(metrics.DriftReplacedName+`\{check="WritableLayer",policy=%q\} [1-9]`, ns))
	// Its replacement writes as much again; stop that before anything else.
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "writer"}, dep)).To(gomega.Succeed())
	g.Expect(k8s.Delete(ctx, dep)).To(gomega.Succeed())

	// The same reading covered the emptyDir writer, which wrote as much into its volume only.
	g.Eventually(reportOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Results", gomega.ContainElement(
		result(ns, fixityv1.DriftRulePrefix+string(fixityv1.CheckWritableLayer), scratch.Name, "pass"))))
	g.Consistently(events(ctx, ns, scratch.Name), "3s", poll).ShouldNot(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected)))
}

// Node drift on a real kubelet: the baseline records what this machine really runs (its kernel,
// OS image, containerd), and restarting the kubelet as another version, as an in-place upgrade
// would, is found.
func TestRealNodeBaselineAndKubeletReplacedInPlace(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	kernel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	osRelease, err := os.ReadFile("/etc/os-release")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var osImage string
	for l := range strings.SplitSeq(string(osRelease), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			osImage = strings.Trim(v, `"`)
		}
	}
	p := &fixityv1.NodeImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("real-node")},
		Spec: fixityv1.NodeImmutabilityPolicySpec{
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{cluster.RealNodeLabel: "true"}},
			// Reported only: the other real-node tests need the node schedulable.
			Action: fixityv1.NodeReport,
		},
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	g.Eventually(baselineOf(ctx, env.RealNodeName), eventually, poll).Should(gomega.And(
		phase(fixityv1.NodeClean),
		gomega.HaveField("Spec.NodeInfo.KernelVersion", strings.TrimSpace(string(kernel))),
		gomega.HaveField("Spec.NodeInfo.OSImage", osImage),
		gomega.HaveField("Spec.NodeInfo.KubeletVersion", "v1.37.2"),
		gomega.HaveField("Spec.NodeInfo.ContainerRuntimeVersion", gomega.HavePrefix("containerd://2.")),
	))

	t.Cleanup(func() {
		if err := env.RestartKubelet(context.Background(), "kubelet"); err != nil {
			t.Errorf("putting the kubelet back: %v", err)
		}
	})
	g.Expect(env.RestartKubelet(ctx, "kubelet-next")).To(gomega.Succeed())
	g.Eventually(baselineOf(ctx, env.RealNodeName), eventually, poll).Should(gomega.HaveField("Status.Drifted", gomega.ContainElement(gomega.And(
		gomega.HaveField("Check", fixityv1.CheckKubeletVersion),
		gomega.HaveField("Recorded", "v1.37.2"), gomega.HaveField("Observed", "v1.37.3")))))
	g.Expect(nodeNamed(ctx, env.RealNodeName)(g)).NotTo(cordoned, "a Report policy only reports")
}
