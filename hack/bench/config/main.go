package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/hack/bench/benchutil"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

func main() {
	configMaps := flag.Int("configmaps", 5000, "ConfigMaps in the cluster")
	secrets := flag.Int("secrets", 5000, "Secrets in the cluster")
	cmBytes := flag.Int("configmap-bytes", 4096, "data bytes per ConfigMap")
	secretBytes := flag.Int("secret-bytes", 1024, "data bytes per Secret")
	namespaces := flag.Int("namespaces", 50, "namespaces the objects are spread over")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the manager (as config/manager sets from its memory limit); empty: none")
	flag.Parse()
	if err := run(*configMaps, *secrets, *cmBytes, *secretBytes, *namespaces, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "config bench:", err)
		os.Exit(1)
	}
}

type figures struct{ rss, hwm int64 }

func run(configMaps, secrets, cmBytes, secretBytes, namespaces int, memLimit string) error {
	if namespaces < 1 {
		return errors.New("need at least one namespace")
	}
	ctx := context.Background()
	ws, err := benchutil.NewWorkspace("config")
	if err != nil {
		return err
	}
	defer ws.Close()
	c, err := cluster.Start(benchutil.ClusterOptions(ws.Root, 1))
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
	empty, err := startedMemory(ctx, mgr)
	if err != nil {
		return err
	}
	mgr.Stop()

	start := time.Now()
	names := make([]string, namespaces)
	for i := range names {
		names[i] = fmt.Sprintf("config-%d", i)
		if err := c.CreateNamespace(ctx, names[i]); err != nil {
			return err
		}
	}
	if err := createAll(ctx, k8s, names, configMaps, secrets, cmBytes, secretBytes); err != nil {
		return err
	}
	created := time.Since(start)

	start = time.Now()
	full, err := startedMemory(ctx, mgr)
	if err != nil {
		return err
	}
	readyAfter := time.Since(start)
	defer mgr.Stop()

	change, err := timeToReplacement(ctx, k8s, names[0], img.String())
	if err != nil {
		return err
	}
	after, err := memory(mgr)
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Printf("%-48s %s\n", "measure", "value")
	fmt.Printf("%-48s %d ConfigMaps of %d B, %d Secrets of %d B, in %d namespaces (created in %s)\n", "cluster",
		configMaps, cmBytes, secrets, secretBytes, namespaces, created.Round(time.Second))
	fmt.Printf("%-48s %q\n", "manager GOMEMLIMIT", memLimit)
	fmt.Printf("%-48s %.1f MiB (peak %.1f MiB)\n", "manager RSS when ready, no user config", benchutil.MiB(empty.rss), benchutil.MiB(empty.hwm))
	fmt.Printf("%-48s %.1f MiB (peak %.1f MiB)\n", "manager RSS when ready, with the objects", benchutil.MiB(full.rss), benchutil.MiB(full.hwm))
	fmt.Printf("%-48s %.1f MiB (peak %.1f MiB)\n", "manager RSS after the config change", benchutil.MiB(after.rss), benchutil.MiB(after.hwm))
	fmt.Printf("%-48s %s\n", "start until ready (config cache synced)", readyAfter.Round(time.Millisecond))
	fmt.Printf("%-48s %s\n", "ConfigMap edit to the bare pod's deletion", change.Round(time.Millisecond))
	fmt.Printf("%-48s %.1f MiB\n", "peak added by the objects", benchutil.MiB(full.hwm-empty.hwm))
	return nil
}

// startedMemory starts the manager and reads its memory once it is ready.
func startedMemory(ctx context.Context, mgr *cluster.Manager) (figures, error) {
	if err := mgr.Start(ctx); err != nil {
		return figures{}, err
	}
	return memory(mgr)
}

func memory(mgr *cluster.Manager) (figures, error) {
	rss, hwm, err := benchutil.Memory(mgr.PID())
	return figures{rss, hwm}, err
}

// createAll creates the ConfigMaps and Secrets round-robin over the namespaces, with random
// data, so nothing compresses or deduplicates.
func createAll(ctx context.Context, k8s client.Client, namespaces []string, configMaps, secrets, cmBytes, secretBytes int) error {
	objects := make(chan client.Object)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for obj := range objects {
				if err := k8s.Create(ctx, obj); err != nil {
					select {
					case errs <- fmt.Errorf("creating %s/%s: %w", obj.GetNamespace(), obj.GetName(), err):
					default:
					}
				}
			}
		})
	}
	for i := range max(configMaps, secrets) {
		meta := metav1.ObjectMeta{Namespace: namespaces[i%len(namespaces)], Name: fmt.Sprintf("obj-%d", i)}
		if i < configMaps {
			objects <- &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"config.yaml": random(cmBytes)}}
		}
		if i < secrets {
			objects <- &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"token": []byte(random(secretBytes))}}
		}
	}
	close(objects)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func random(n int) string {
	b := make([]byte, (n*3+3)/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// timeToReplacement puts a bare pod that mounts one of the ConfigMaps under a policy, edits the
// ConfigMap, and times how long until the pod is being deleted (to be recreated).
func timeToReplacement(ctx context.Context, k8s client.WithWatch, ns, image string) (time.Duration, error) {
	policy := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "config-bench"},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match: fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		return 0, err
	}
	// The policy selects the namespace once its status has caught up with it.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &fixityv1.ImmutabilityPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			return false, err
		}
		return p.Status.ObservedGeneration == p.Generation, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the policy: %w", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "uses-config"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: image, VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "obj-0"}},
			}}},
		},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		return 0, fmt.Errorf("creating the pod: %w", err)
	}
	if _, ok := pod.Annotations[fixityv1.ConfigAnnotation]; !ok {
		return 0, fmt.Errorf("pod %s/%s was admitted without %s", ns, pod.Name, fixityv1.ConfigAnnotation)
	}
	// Matched once the policy has evaluated the running pod.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &fixityv1.ImmutabilityPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), p); err != nil {
			return false, err
		}
		return p.Status.MatchedPods == 1, nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the policy to match the pod: %w", err)
	}
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "obj-0"}, cm); err != nil {
		return 0, err
	}
	cm.Data["config.yaml"] = random(len(cm.Data["config.yaml"]))
	return benchutil.TimeToDeletion(ctx, k8s, pod, func() error { return k8s.Update(ctx, cm) })
}
