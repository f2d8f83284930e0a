package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Karpenter is a real Karpenter (its KWOK provider, sigs.k8s.io/karpenter/kwok) run against the
// cluster. It binds its metrics and health ports on every interface and has no flag to bind them
// to loopback, so it runs in a network namespace of its own with only a loopback device; the
// harness listens on that loopback, on the API server's port, and carries the connections to the
// API server. Nothing it starts listens or dials outside this machine's loopback.
type Karpenter struct {
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	ln   net.Listener
}

// StartKarpenter runs binary (make karpenter builds bin/karpenter/karpenter-kwok) and returns once
// it can reach the API server. Stop ends it.
func (c *Cluster) StartKarpenter(ctx context.Context, binary string) (*Karpenter, error) {
	api, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("API server address %q: %w", c.Config.Host, err)
	}
	ready := filepath.Join(c.Dir, "karpenter.ready")
	_ = os.Remove(ready)
	k := &Karpenter{Log: c.LogPath("karpenter"), done: make(chan struct{})}
	logFile, err := c.openLog("karpenter")
	if err != nil {
		return nil, err
	}
	// unshare(1) execs the shell in a new network namespace, which brings its loopback up and
	// waits for the harness's listener before it execs Karpenter (same process throughout).
	k.cmd = exec.Command("unshare", "--net", "--", "/bin/sh", "-c",
		`ip link set lo up && while [ ! -e "$FIXITY_KARPENTER_READY" ]; do sleep 0.1; done && exec "$0"`, binary)
	k.cmd.Dir = c.Dir
	k.cmd.Env = append(os.Environ(),
		"FIXITY_KARPENTER_READY="+ready,
		"KUBECONFIG="+c.KubeconfigPath,
		"DISABLE_LEADER_ELECTION=true",
		"METRICS_PORT=8080", "HEALTH_PROBE_PORT=8081", // inside its own namespace
	)
	k.cmd.Stdout, k.cmd.Stderr = logFile, logFile
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the thread that forked the child: keep it while the child lives.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := k.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = k.cmd.Wait()
		_ = logFile.Close()
		close(k.done)
	}()
	if err := <-started; err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting Karpenter: %w", err)
	}
	// Its loopback is up once a listener can bind there.
	addr := net.JoinHostPort("127.0.0.1", api.Port())
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		select {
		case <-k.done:
			return false, fmt.Errorf("karpenter exited; see %s", k.Log)
		default:
		}
		ln, err := listenIn(k.cmd.Process.Pid, addr)
		if err != nil {
			return false, nil
		}
		k.ln = ln
		return true, nil
	})
	if err != nil {
		k.Stop()
		return nil, fmt.Errorf("listening in Karpenter's network namespace: %w", err)
	}
	go k.forward(addr)
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		k.Stop()
		return nil, err
	}
	return k, nil
}

// listenIn listens on addr inside the network namespace of process pid.
func listenIn(pid int, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // the namespace is the thread's; this thread alone changes it
		host, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			out <- result{err: err}
			return
		}
		defer func() { _ = unix.Close(host) }()
		target, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			out <- result{err: err}
			return
		}
		defer func() { _ = unix.Close(target) }()
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			out <- result{err: err}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(host, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so it ends with this goroutine and nothing else runs in
			// the other namespace.
			if ln != nil {
				_ = ln.Close()
			}
			out <- result{err: fmt.Errorf("returning to the host network namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		out <- result{ln: ln, err: lerr}
	}()
	r := <-out
	return r.ln, r.err
}

// forward carries each connection Karpenter opens to the API server on this machine's loopback.
func (k *Karpenter) forward(addr string) {
	for {
		conn, err := k.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = conn.Close() }()
			up, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer func() { _ = up.Close() }()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
			go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// Running reports whether Karpenter still runs.
func (k *Karpenter) Running() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// Stop ends Karpenter (SIGTERM, then SIGKILL) and its forwarder.
func (k *Karpenter) Stop() {
	if k.ln != nil {
		_ = k.ln.Close()
	}
	if !k.Running() {
		return
	}
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = k.cmd.Process.Kill()
	}
	select {
	case <-k.done:
	case <-time.After(15 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}
