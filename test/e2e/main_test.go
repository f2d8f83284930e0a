package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
)

var (
	root       string
	managerBin string
	env        *cluster.Cluster
	k8s        client.Client
	mgr        *managerProcess
	// reg is the loopback OCI registry of the drift tests' images.
	reg *registry.Registry
)

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

	env, err = cluster.Start(cluster.Options{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")},
		WebhookPaths:      []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
		Nodes:             3,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local cluster:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if reg, err = registry.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the registry:", err)
		return 1
	}
	defer func() { _ = reg.Close() }()

	ctx := context.Background()
	if k8s, err = client.New(env.Config, client.Options{Scheme: operator.NewScheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := env.CreateNamespace(ctx, fixityv1.OperatorNamespace); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr = &managerProcess{log: filepath.Join(work, "manager.log")}
	if err := mgr.start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting the manager:", err)
		return 1
	}
	defer mgr.stop()
	return m.Run()
}

// managerProcess runs the manager binary against the local cluster, as `make demo` does.
type managerProcess struct {
	log   string
	probe string
	cmd   *exec.Cmd
	done  chan struct{}
}

func (p *managerProcess) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.probe = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(managerBin,
		"--kubeconfig", env.KubeconfigPath,
		"--leader-elect",
		"--webhook-port", strconv.Itoa(env.Webhook.LocalServingPort),
		"--webhook-cert-path", env.Webhook.LocalServingCertDir,
		"--health-probe-bind-address", p.probe,
		"--metrics-bind-address", "0",
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Never outlive the test binary.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting %s: %w", managerBin, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); _ = logFile.Close(); close(p.done) }()

	ready := "http://" + p.probe + "/readyz"
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("manager exited; see %s", p.log)
		default:
		}
		resp, err := http.Get(ready)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w (log: %s)", ready, err, p.log)
	}
	return nil
}

// stop sends SIGTERM, as a kubelet would, and waits for the manager to exit.
func (p *managerProcess) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
