package cluster_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fixity-dev/fixity/internal/kubeletstats"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

// The real node runs a pod from the loopback registry with containerd and runc; the API server
// reaches its kubelet for exec and logs; and Stop leaves nothing behind: no process, mount,
// cgroup or bridge, and the sysctls the kubelet and CNI changed are back.
func TestRealNodeRunsPods(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a full local cluster with a real kubelet")
	}
	ctx := t.Context()
	reg, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	opts := &cluster.RealNodeOptions{Registries: []string{reg.Host()}}
	pauseBin, err := opts.PauseBinary()
	if err != nil {
		t.Fatal(err)
	}
	pause, err := reg.PushPauseImage(ctx, "pause", "3.10", pauseBin)
	if err != nil {
		t.Fatal(err)
	}
	opts.SandboxImage = pause.String()
	app, err := reg.PushRunnableImage(ctx, "real/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := cluster.Start(cluster.Options{Nodes: 1, Dir: dir, RealNode: opts})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Component logs:\n%s", c.TailLogs(40))
		}
		if !stopped {
			_ = c.Stop()
		}
	})
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The machine's values, saved before the first real node changed any.
	var saved map[string]string
	if data, err := os.ReadFile(cluster.RealNodeSysctlsFile); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	bridge := c.RealNodeBridge()
	node, err := cs.CoreV1().Nodes().Get(ctx, c.RealNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels[cluster.RealNodeLabel] != "true" || !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://2.") {
		t.Errorf("real node labels %v, runtime %q", node.Labels, node.Status.NodeInfo.ContainerRuntimeVersion)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "real", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{cluster.RealNodeLabel: "true"},
			Tolerations:                   []corev1.Toleration{cluster.RealNodeToleration()},
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []corev1.Container{{Name: "app", Image: app.String(),
				Command: []string{"/bin/sh", "-c", "echo started; cat /etc/fixity-image; trap 'exit 0' TERM; while true; do sleep 1; done"}}},
		},
	}
	if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, pollEvery, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		running, err = cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return running.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod on the real node not Running: %v; status %+v", err, running.Status)
	}
	if ip := running.Status.PodIP; !strings.HasPrefix(ip, "10.250.0.") {
		t.Errorf("pod IP %q, want one on the node's bridge", ip)
	}
	if id := running.Status.ContainerStatuses[0].ImageID; !strings.Contains(id, app.DigestStr()) {
		t.Errorf("imageID %q, want the pushed digest %s", id, app.DigestStr())
	}
	// The kubelet serves its stats to a client that verifies it against the harness's CA and
	// authenticates as a user of the API server (its webhook authorizer asks about nodes/stats).
	stats, err := kubeletstats.NewClient(c.Config, c.KubeletCAFile(), false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if node, err = cs.CoreV1().Nodes().Get(ctx, c.RealNodeName, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, pollEvery, time.Minute, true, func(ctx context.Context) (bool, error) {
		summary, err := stats.Summary(ctx, node)
		if err != nil {
			return false, err
		}
		_, ok := summary[running.UID].Containers["app"]
		return ok, nil
	})
	if err != nil {
		t.Errorf("reading the real kubelet's stats: %v", err)
	}
	// Exec and logs go API server -> kubelet -> containerd's stream server.
	out, err := c.Kubectl("exec", "real", "--", "cat", "/etc/fixity-image").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "real/app:v1" {
		t.Errorf("kubectl exec: %v: %s", err, out)
	}
	out, err = c.Kubectl("logs", "real").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "started") {
		t.Errorf("kubectl logs: %v: %s", err, out)
	}

	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true
	if err := exec.Command("ip", "link", "show", bridge).Run(); err == nil {
		t.Errorf("the node's bridge %s is still there after Stop", bridge)
	}
	// Another test binary's real node may still run; the last one to stop restores them.
	if others, _ := exec.Command("sh", "-c", "ip -o link show | grep -c 'fixity-rn'").Output(); strings.TrimSpace(string(others)) == "0" {
		if after := readSysctls(t); !maps.Equal(saved, after) {
			t.Errorf("sysctls after Stop %v, before the first real node %v", after, saved)
		}
		if _, err := os.Stat(cluster.RealNodeSysctlsFile); err == nil {
			t.Errorf("%s is left after the last real node stopped", cluster.RealNodeSysctlsFile)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), dir) {
		t.Errorf("mounts left under %s:\n%s", dir, mounts)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/fixity-real-node-" + strings.TrimPrefix(bridge, "fixity-rn")); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, glob := range []string{"/var/log/containers/*.log", "/var/lib/cni/results/" + bridge + "-*"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if target, _ := os.Readlink(f); !strings.HasPrefix(f, "/var/log/") || strings.HasPrefix(target, dir) {
				t.Errorf("left after Stop: %s", f)
			}
		}
	}
	if procs := processesUnder(t, dir); len(procs) > 0 {
		t.Errorf("processes left: %v", procs)
	}
}

func readSysctls(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward"} {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			t.Fatal(err)
		}
		out[k] = strings.TrimSpace(string(v))
	}
	return out
}

// processesUnder lists processes whose command line names dir (the node's binaries and shims
// are given paths in it).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}
