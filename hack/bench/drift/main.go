package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/hack/bench/benchutil"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

func main() {
	nodes := flag.Int("nodes", 50, "KWOK nodes")
	pods := flag.Int("pods", 5000, "pods under the policy")
	deployments := flag.Int("deployments", 50, "Deployments the pods are spread over")
	samples := flag.Int("samples", 10, "drift events timed")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the manager (as config/manager sets from its memory limit); empty: none")
	flag.Parse()
	if err := run(*nodes, *pods, *deployments, *samples, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "drift bench:", err)
		os.Exit(1)
	}
}

func run(nodes, pods, deployments, samples int, memLimit string) error {
	if deployments < samples || pods < deployments {
		return fmt.Errorf("need pods >= deployments >= samples")
	}
	ctx := context.Background()
	ws, err := benchutil.NewWorkspace("drift")
	if err != nil {
		return err
	}
	defer ws.Close()

	start := time.Now()
	c, err := cluster.Start(benchutil.ClusterOptions(ws.Root, nodes))
	if err != nil {
		return fmt.Errorf("starting the cluster: %w", err)
	}
	defer func() { _ = c.Stop() }()
	reg, err := registry.Start()
	if err != nil {
		return err
	}
	defer func() { _ = reg.Close() }()
	img, err := reg.PushRandomImage(ctx, "bench/app", "v1")
	if err != nil {
		return err
	}
	other, err := reg.PushRandomImage(ctx, "bench/other", "v1")
	if err != nil {
		return err
	}
	k8s, err := client.NewWithWatch(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return err
	}
	if err := c.CreateNamespace(ctx, fixityv1.OperatorNamespace); err != nil {
		return err
	}
	mgr := cluster.NewManager(c, ws.Manager, filepath.Join(ws.Dir, "manager.log"))
	if memLimit != "" {
		mgr.Env = []string{"GOMEMLIMIT=" + memLimit}
	}
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	defer mgr.Stop()
	fmt.Printf("cluster with %d nodes and the manager up in %s\n", nodes, time.Since(start).Round(time.Second))

	const ns = "scale"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		return err
	}
	policy := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "scale"},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match: fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
			Drift: fixityv1.DriftRules{MaxDriftedPercent: ptr.To[int32](50)},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		return err
	}

	start = time.Now()
	per := pods / deployments
	for i := range deployments {
		labels := map[string]string{"app": fmt.Sprintf("app-%d", i)}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: labels["app"]},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(int32(per)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: img.String()}}},
				},
			},
		}
		if err := k8s.Create(ctx, d); err != nil {
			return fmt.Errorf("creating %s: %w", d.Name, err)
		}
	}
	total := per * deployments
	// The manager has looked at every pod once the policy counts them all.
	err = wait.PollUntilContextTimeout(ctx, 5*time.Second, 30*time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &fixityv1.ImmutabilityPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			return false, err
		}
		ready, err := readyPods(ctx, k8s, ns)
		if err != nil {
			return false, err
		}
		fmt.Printf("%4ds: %d/%d pods Ready, policy matches %d\n", int(time.Since(start).Seconds()), len(ready), total, p.Status.MatchedPods)
		return len(ready) == total && int(p.Status.MatchedPods) == total, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d Ready pods: %w", total, err)
	}
	rolledOut := time.Since(start)
	rss, hwm, err := benchutil.Memory(mgr.PID())
	if err != nil {
		return err
	}

	// One drifted pod per Deployment at a time, so neither the breaker nor the one-per-owner
	// rule delays an eviction: the figure is detection plus decision plus the Eviction API.
	ready, err := readyPods(ctx, k8s, ns)
	if err != nil {
		return err
	}
	var latencies []time.Duration
	seen := map[string]bool{}
	for _, pod := range ready {
		if len(latencies) == samples {
			break
		}
		owner := pod.Labels["app"]
		if seen[owner] {
			continue
		}
		seen[owner] = true
		d, err := timeToEviction(ctx, k8s, &pod, other.DigestStr())
		if err != nil {
			return err
		}
		latencies = append(latencies, d)
	}
	rss2, hwm2, err := benchutil.Memory(mgr.PID())
	if err != nil {
		return err
	}
	fmt.Printf("drift to eviction, in order: %v\n", latencies)
	slices.Sort(latencies)

	fmt.Println()
	fmt.Printf("%-44s %s\n", "measure", "value")
	fmt.Printf("%-44s %d nodes, %d pods, %d Deployments\n", "cluster", nodes, total, deployments)
	fmt.Printf("%-44s %q\n", "manager GOMEMLIMIT", memLimit)
	fmt.Printf("%-44s %s\n", "rollout until the policy matched every pod", rolledOut.Round(time.Second))
	fmt.Printf("%-44s %.1f MiB (peak %.1f MiB)\n", "manager RSS at steady state", benchutil.MiB(rss), benchutil.MiB(hwm))
	fmt.Printf("%-44s %.1f MiB (peak %.1f MiB)\n", "manager RSS after the drift events", benchutil.MiB(rss2), benchutil.MiB(hwm2))
	fmt.Printf("%-44s p50 %s, max %s (n=%d)\n", "drift to eviction", latencies[len(latencies)/2].Round(time.Millisecond),
		latencies[len(latencies)-1].Round(time.Millisecond), len(latencies))
	fmt.Printf("%-44s RSS < 150 MiB: %t; drift to eviction < 2s: %t\n", "targets", benchutil.MiB(hwm2) < 150, latencies[len(latencies)-1] < 2*time.Second)
	return nil
}

func readyPods(ctx context.Context, k8s client.Reader, ns string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if !p.DeletionTimestamp.IsZero() || len(p.Status.ContainerStatuses) == 0 {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// timeToEviction makes pod report another digest and times how long until it is being deleted.
func timeToEviction(ctx context.Context, k8s client.WithWatch, pod *corev1.Pod, digest string) (time.Duration, error) {
	before := pod.DeepCopy()
	repo, _, _ := strings.Cut(pod.Spec.Containers[0].Image, "@")
	pod.Status.ContainerStatuses[0].ImageID = repo + "@" + digest
	return benchutil.TimeToDeletion(ctx, k8s, pod, func() error { return k8s.Status().Patch(ctx, pod, client.MergeFrom(before)) })
}
