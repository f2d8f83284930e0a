package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

func main() {
	dir := flag.String("dir", ".local", "Directory for the kubeconfig, certificates, logs and state.")
	nodes := flag.Int("nodes", 3, "Number of KWOK fake nodes.")
	registryAddr := flag.String("registry", "127.0.0.1:5001", "Loopback address of the OCI registry.")
	webhookPort := flag.Int("webhook-port", 9443, "Port the manager serves webhooks on (the API server calls 127.0.0.1:PORT).")
	karpenter := flag.String("karpenter", "", "Karpenter's KWOK provider binary to run in the cluster (make karpenter), with the "+
		"provisioners' CRDs from bin/crds (make provisioner-crds); empty: none.")
	realNode := flag.Bool("real-node", false, "Add one node run by a real kubelet and containerd (make real-node; needs root), "+
		"labelled fixity.dev/real-node=true and tainted so that only pods tolerating it land there.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *dir, *nodes, *registryAddr, *webhookPort, *karpenter, *realNode)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "localenv:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir string, nodes int, registryAddr string, webhookPort int, karpenter string, realNode bool) (err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	ready := filepath.Join(dir, "ready")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	_ = os.Remove(ready)
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}

	reg, err := registry.StartAt(registryAddr)
	if err != nil {
		return fmt.Errorf("starting the registry on %s: %w", registryAddr, err)
	}
	defer func() { err = errors.Join(err, reg.Close()) }()
	images, err := pushDemoImages(ctx, reg, dir)
	if err != nil {
		return err
	}

	var node *cluster.RealNodeOptions
	if realNode {
		node = &cluster.RealNodeOptions{Registries: []string{reg.Host()}}
		pause, err := node.PauseBinary()
		if err != nil {
			return err
		}
		sandbox, err := reg.PushPauseImage(ctx, "pause", "3.10", pause)
		if err != nil {
			return err
		}
		node.SandboxImage = sandbox.String()
	}

	crds := []string{filepath.Join(root, "config", "crd", "bases")}
	if karpenter != "" {
		crds = append(crds, filepath.Join(root, "bin", "crds"))
	}
	c, err := cluster.Start(cluster.Options{
		Dir:               filepath.Join(dir, "cluster"),
		Nodes:             nodes,
		CRDDirectoryPaths: crds,
		WebhookPaths:      []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
		WebhookHost:       "127.0.0.1",
		WebhookPort:       webhookPort,
		StartTimeout:      3 * time.Minute,
		RealNode:          node,
	})
	if err != nil {
		return fmt.Errorf("starting the local cluster: %w", err)
	}
	defer func() { err = errors.Join(err, c.Stop()) }()

	if err := install(ctx, c, dir); err != nil {
		return err
	}
	if karpenter != "" {
		k, err := c.StartKarpenter(ctx, karpenter)
		if err != nil {
			return err
		}
		defer k.Stop()
	}
	if err := addUsers(c, dir, "alice", "bob"); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "images.env"), images); err != nil {
		return err
	}
	if err := writeFile(ready, time.Now().Format(time.RFC3339)+"\n"); err != nil {
		return err
	}
	realNodes := ""
	if c.RealNodeName != "" {
		realNodes = " and real node " + c.RealNodeName
	}
	fmt.Printf("Local environment ready: %d nodes%s, registry %s, kubeconfig %s\n", len(c.NodeNames), realNodes, reg.Host(), filepath.Join(dir, "kubeconfig"))
	<-ctx.Done()
	fmt.Println("Stopping the local environment")
	_ = os.Remove(ready)
	return nil
}

// install puts in place what an installation of the operator would: its namespace (for leader
// election and events), and the kubeconfig and serving certificate a manager outside the cluster
// needs.
func install(ctx context.Context, c *cluster.Cluster, dir string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fixityv1.OperatorNamespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", fixityv1.OperatorNamespace, err)
	}
	if err := copyFile(c.KubeconfigPath, filepath.Join(dir, "kubeconfig")); err != nil {
		return err
	}
	certs := filepath.Join(dir, "webhook-certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := copyFile(filepath.Join(c.Webhook.LocalServingCertDir, f), filepath.Join(certs, f)); err != nil {
			return err
		}
	}
	return nil
}

// addUsers writes a kubeconfig per user (client certificates, group "developers", bound by
// config/samples/developer_role.yaml), so the demo can show that a grant lets in its requester
// and nobody else.
func addUsers(c *cluster.Cluster, dir string, names ...string) error {
	for _, name := range names {
		u, err := c.Env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"developers"}}, nil)
		if err != nil {
			return fmt.Errorf("adding user %s: %w", name, err)
		}
		kc, err := u.KubeConfig()
		if err != nil {
			return fmt.Errorf("writing kubeconfig of %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".kubeconfig"), kc, 0o600); err != nil {
			return fmt.Errorf("writing kubeconfig of %s: %w", name, err)
		}
	}
	return nil
}

// pushDemoImages pushes a signed and attested image (bundles), one signed the legacy way, and an unsigned image and returns shell assignments naming them
// by tag and by digest, for the demo script.
func pushDemoImages(ctx context.Context, reg *registry.Registry, dir string) (string, error) {
	key, err := registry.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(dir, "cosign.pub"), string(key.PublicPEM)); err != nil {
		return "", err
	}
	// As a team on current tooling does: cosign v3's default bundle, and SLSA provenance.
	signed, err := reg.PushRandomImage(ctx, "shop/web", "1.0")
	if err != nil {
		return "", err
	}
	if err := reg.SignBundle(ctx, signed, key); err != nil {
		return "", err
	}
	provenance := []byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},"runDetails":{"builder":{"id":"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}}}`)
	if err := reg.Attest(ctx, signed, key, "https://slsa.dev/provenance/v1", provenance); err != nil {
		return "", err
	}
	// As a team still on cosign v2 does: the legacy .sig tag.
	legacy, err := reg.PushRandomImage(ctx, "shop/legacy", "1.0")
	if err != nil {
		return "", err
	}
	if err := reg.Sign(ctx, legacy, key); err != nil {
		return "", err
	}
	if err := reg.Attest(ctx, legacy, key, "https://slsa.dev/provenance/v1", provenance); err != nil {
		return "", err
	}
	unsigned, err := reg.PushRandomImage(ctx, "shop/unsigned", "1.0")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTRY=%s\n", reg.Host())
	fmt.Fprintf(&b, "SIGNED_TAG=%s/shop/web:1.0\nSIGNED_DIGEST=%s\n", reg.Host(), signed.String())
	fmt.Fprintf(&b, "UNSIGNED_TAG=%s/shop/unsigned:1.0\nUNSIGNED_DIGEST=%s\n", reg.Host(), unsigned.String())
	fmt.Fprintf(&b, "LEGACY_TAG=%s/shop/legacy:1.0\n", reg.Host())
	return b.String(), nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", to, err)
	}
	return nil
}

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
