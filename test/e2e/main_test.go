package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

var (
	root       string
	managerBin string
	// pluginBin is kubectl-fixity, built from this checkout.
	pluginBin string
	env       *cluster.Cluster
	k8s       client.Client
	mgr       *cluster.Manager
	// reg is the loopback OCI registry of the drift tests' images.
	reg *registry.Registry
	// metricsAddr is where the manager serves /metrics.
	metricsAddr string
)

// replacementTimeout is the manager's --replacement-timeout in these tests.
const replacementTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = cluster.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	work, err := os.MkdirTemp("", "fixity-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(work) }()

	// The manager under test is the real binary, built from this checkout.
	managerBin = filepath.Join(work, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the manager:", err)
		return 1
	}
	// So is the kubectl plugin.
	pluginBin = filepath.Join(work, "kubectl-fixity")
	build = exec.Command("go", "build", "-o", pluginBin, "./cmd/kubectl-fixity")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kubectl-fixity:", err)
		return 1
	}

	// The registry first: the real node pulls its sandbox image from it.
	if reg, err = registry.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the registry:", err)
		return 1
	}
	defer func() { _ = reg.Close() }()
	realNode := &cluster.RealNodeOptions{Registries: []string{reg.Host()}}
	pause, err := realNode.PauseBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sandbox, err := reg.PushPauseImage(context.Background(), "pause", "3.10", pause)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	realNode.SandboxImage = sandbox.String()

	env, err = cluster.Start(cluster.Options{
		// Fixity's CRDs, those of the provisioners it hands nodes to (make provisioner-crds), and
		// OpenReports' as that project ships them (make manifests).
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"), filepath.Join(root, "bin", "crds"),
			filepath.Join(root, "config", "openreports", "openreports.io_reports.yaml"),
			filepath.Join(root, "config", "openreports", "openreports.io_clusterreports.yaml"),
		},
		WebhookPaths: []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
		Nodes:        3,
		// One node with a real kubelet and containerd, for what only a runtime shows.
		RealNode: realNode,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local cluster:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	if k8s, err = client.New(env.Config, client.Options{Scheme: operator.NewScheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := env.CreateNamespace(ctx, fixityv1.OperatorNamespace); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr = cluster.NewManager(env, managerBin, filepath.Join(work, "manager.log"))
	// Metrics over plain HTTP on loopback, so tests read what Prometheus would scrape.
	port, err := cluster.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	mgr.Args = append(mgr.Args, "--metrics-bind-address", metricsAddr, "--metrics-secure=false",
		// Short enough for a test to see an owner reported stuck.
		"--replacement-timeout", replacementTimeout.String(),
		// The real node's kubelet has a serving certificate of the harness's CA; its stats are read
		// every few seconds rather than every 30 (WritableLayer).
		"--kubelet-certificate-authority", env.KubeletCAFile(), "--kubelet-stats-period", "3s")
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting the manager:", err)
		return 1
	}
	defer mgr.Stop()
	return m.Run()
}
