package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/hack/bench/benchutil"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
)

func main() {
	nodes := flag.Int("nodes", 500, "nodes under the node policy")
	pods := flag.Int("pods", 5000, "pods in the cluster (cached by the manager)")
	drifting := flag.Int("drifting", 20, "nodes whose kernel changes at once")
	flag.Parse()
	if err := run(*nodes, *pods, *drifting); err != nil {
		fmt.Fprintln(os.Stderr, "nodes bench:", err)
		os.Exit(1)
	}
}

func run(nodes, pods, drifting int) error {
	ctx := context.Background()
	ws, err := benchutil.NewWorkspace("nodes")
	if err != nil {
		return err
	}
	defer ws.Close()
	// The control plane alone: nodes are objects whose status this program plays the kubelet
	// for, so nothing else (no node lifecycle controller) changes them while they are timed.
	c, err := cluster.StartControlPlane(benchutil.ClusterOptions(ws.Root, 0))
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = c.Stop() }()
	cfg := *c.Config
	cfg.QPS, cfg.Burst = 500, 1000
	k8s, err := client.NewWithWatch(&cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return err
	}
	if err := c.CreateNamespace(ctx, fixityv1.OperatorNamespace); err != nil {
		return err
	}
	mgr := cluster.NewManager(c, ws.Manager, filepath.Join(ws.Dir, "manager.log"))
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	defer mgr.Stop()

	const ns = "scale"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(pods, func(i int) error {
		return k8s.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": "scale"}},
			Spec: corev1.PodSpec{
				NodeName:   fmt.Sprintf("node-%d", i%max(nodes, 1)),
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
			},
		})
	}); err != nil {
		return fmt.Errorf("creating pods: %w", err)
	}
	fmt.Printf("%d pods created in %s\n", pods, time.Since(start).Round(time.Second))
	rss0, err := settled(mgr.PID())
	if err != nil {
		return err
	}

	policy := &fixityv1.NodeImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet"},
		Spec: fixityv1.NodeImmutabilityPolicySpec{
			Action:         fixityv1.NodeCordon,
			MaxUnavailable: ptr.To(intstr.FromInt(drifting)),
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		return err
	}
	start = time.Now()
	if err := parallel(nodes, func(i int) error { return createNode(ctx, k8s, fmt.Sprintf("node-%d", i), i) }); err != nil {
		return fmt.Errorf("creating nodes: %w", err)
	}
	// Every node recorded, and the policy counts them all.
	err = wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list fixityv1.NodeBaselineList
		if err := k8s.List(ctx, &list); err != nil {
			return false, err
		}
		p := &fixityv1.NodeImmutabilityPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			return false, err
		}
		return len(list.Items) == nodes && int(p.Status.MatchedNodes) == nodes, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d baselines: %w", nodes, err)
	}
	recorded := time.Since(start)
	rss1, err := settled(mgr.PID())
	if err != nil {
		return err
	}

	// drifting nodes get a new kernel at once, as a fleet-wide unattended upgrade would; each is
	// timed from its own change to the moment the API server shows it cordoned.
	w, err := k8s.Watch(ctx, &corev1.NodeList{})
	if err != nil {
		return err
	}
	defer w.Stop()
	var mu sync.Mutex
	changed := map[string]time.Time{}
	if err := parallel(drifting, func(i int) error {
		name := fmt.Sprintf("node-%d", i*(nodes/drifting))
		n := &corev1.Node{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			return err
		}
		before := n.DeepCopy()
		n.Status.NodeInfo.KernelVersion = "6.1.0-29-cloud-amd64"
		mu.Lock()
		changed[name] = time.Now()
		mu.Unlock()
		return k8s.Status().Patch(ctx, n, client.MergeFrom(before))
	}); err != nil {
		return err
	}
	var latencies []time.Duration
	done := map[string]bool{}
	timeout := time.After(5 * time.Minute)
	for len(done) < drifting {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("node watch closed")
			}
			n, isNode := ev.Object.(*corev1.Node)
			if !isNode || ev.Type != watch.Modified || !n.Spec.Unschedulable || done[n.Name] {
				continue
			}
			mu.Lock()
			t0, ok := changed[n.Name]
			mu.Unlock()
			if ok {
				done[n.Name] = true
				latencies = append(latencies, time.Since(t0))
			}
		case <-timeout:
			return fmt.Errorf("only %d of %d drifted nodes were cordoned within 5 minutes", len(done), drifting)
		}
	}
	rss2, hwm2, err := benchutil.Memory(mgr.PID())
	if err != nil {
		return err
	}
	slices.Sort(latencies)

	fmt.Println()
	fmt.Printf("%-44s %s\n", "measure", "value")
	fmt.Printf("%-44s %d nodes, %d pods, %d drifting at once\n", "cluster", nodes, pods, drifting)
	fmt.Printf("%-44s %s\n", "until every node's baseline was recorded", recorded.Round(time.Second))
	fmt.Printf("%-44s %.1f MiB\n", "manager RSS with the pods, no nodes", benchutil.MiB(rss0))
	fmt.Printf("%-44s %.1f MiB (+%.1f MiB)\n", "manager RSS with the nodes and baselines", benchutil.MiB(rss1), benchutil.MiB(rss1-rss0))
	fmt.Printf("%-44s %.1f MiB (peak %.1f MiB)\n", "manager RSS after the drift", benchutil.MiB(rss2), benchutil.MiB(hwm2))
	fmt.Printf("%-44s p50 %s, max %s (n=%d)\n", "kernel change to cordon", latencies[len(latencies)/2].Round(time.Millisecond),
		latencies[len(latencies)-1].Round(time.Millisecond), len(latencies))
	fmt.Printf("%-44s cordon < 2s: %t; RSS growth for the nodes < 20 MiB: %t\n", "targets",
		latencies[len(latencies)-1] < 2*time.Second, benchutil.MiB(rss1-rss0) < 20)
	return nil
}

// createNode registers a node as a kubelet would, Ready, with a full nodeInfo.
func createNode(ctx context.Context, k8s client.Client, name string, i int) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, "pool": "fleet"}},
		Spec:       corev1.NodeSpec{ProviderID: "bench://" + name},
	}
	if err := k8s.Create(ctx, n); err != nil {
		return err
	}
	before := n.DeepCopy()
	n.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("127.3.%d.%d", i/250, i%250+1)}},
		NodeInfo: corev1.NodeSystemInfo{
			KernelVersion: "6.1.0-28-cloud-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)", KubeletVersion: "v1.37.2",
			ContainerRuntimeVersion: "containerd://2.4.2", MachineID: "m-" + name, SystemUUID: "s-" + name, BootID: "b-1",
			OperatingSystem: "linux", Architecture: "amd64",
		},
	}
	return k8s.Status().Patch(ctx, n, client.MergeFrom(before))
}

// settled waits for the manager's RSS to stop moving (its caches filled, its queues drained)
// and returns it.
func settled(pid int) (int64, error) {
	var last int64
	for range 30 {
		time.Sleep(2 * time.Second) // a sampling period, not synchronisation
		rss, _, err := benchutil.Memory(pid)
		if err != nil {
			return 0, err
		}
		if last != 0 && abs(rss-last) < 1<<20 {
			return rss, nil
		}
		last = rss
	}
	return last, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// parallel runs f for 0..n-1, 32 at a time.
func parallel(n int, f func(int) error) error {
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}
