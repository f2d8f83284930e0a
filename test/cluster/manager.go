package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Manager runs the Fixity manager binary against a Cluster as `make demo` does: a separate
// process serving the webhooks where the cluster's webhook configurations point, with leader
// election, logging to a file.
type Manager struct {
	// Binary is the manager executable (go build -o ... ./cmd).
	Binary string
	// Log is the file its output is appended to.
	Log string
	// Env is added to the manager's environment (e.g. GOMEMLIMIT=128MiB).
	Env []string
	// Args come after the default flags, so they override them (the last value wins), except
	// --health-probe-bind-address: the Manager polls the address it picked.
	Args []string

	cluster *Cluster
	probe   string
	cmd     *exec.Cmd
	done    chan struct{}
}

// NewManager returns a Manager for c; Start runs it.
func NewManager(c *Cluster, binary, log string) *Manager {
	return &Manager{Binary: binary, Log: log, cluster: c}
}

// Start runs the manager and waits until it reports ready.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.Launch(); err != nil {
		return err
	}
	return m.WaitReady(ctx)
}

// Launch runs the manager without waiting for it to be ready.
func (m *Manager) Launch() error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	m.probe = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logFile, err := os.OpenFile(m.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(m.Binary,
		"--kubeconfig", m.cluster.KubeconfigPath,
		"--leader-elect",
		"--webhook-port", strconv.Itoa(m.cluster.Webhook.LocalServingPort),
		"--webhook-cert-path", m.cluster.Webhook.LocalServingCertDir,
		"--metrics-bind-address", "0",
	)
	m.cmd.Args = append(m.cmd.Args, m.Args...)
	m.cmd.Args = append(m.cmd.Args, "--health-probe-bind-address", m.probe)
	m.cmd.Env = append(os.Environ(), m.Env...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	// Never outlive the process that started it.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting %s: %w", m.Binary, err)
	}
	done := make(chan struct{})
	m.done = done
	cmd := m.cmd
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(done) }()
	return nil
}

// Ready reports whether the manager's readiness probe answers 200 OK now.
func (m *Manager) Ready() bool {
	resp, err := http.Get("http://" + m.probe + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady waits until the launched manager reports ready, for at most a minute.
func (m *Manager) WaitReady(ctx context.Context) error {
	done := m.done
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("manager exited; see %s", m.Log)
		default:
		}
		return m.Ready(), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager to be ready: %w (log: %s)", err, m.Log)
	}
	return nil
}

// Running reports whether the manager process is running.
func (m *Manager) Running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// PID is the manager's process ID while it runs.
func (m *Manager) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Stop sends SIGTERM, as a kubelet would, and waits for the manager to exit.
func (m *Manager) Stop() {
	if !m.Running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// Kill ends the manager with SIGKILL, as a node lost or an OOM kill would: it releases nothing
// (its leader lease runs out on its own).
func (m *Manager) Kill() {
	if !m.Running() {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
}
