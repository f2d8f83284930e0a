package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a component process started by the harness.
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd

	done     chan struct{} // closed once the process has been reaped
	waitErr  error         // valid after done
	reported bool          // its exit already failed the start-up
}

// startChild starts a component from BinDir with its output in <Dir>/<name>.log.
func (c *Cluster) startChild(name string, env []string, args ...string) error {
	_, err := c.startProcess(name, filepath.Join(c.BinDir, name), env, args...)
	return err
}

// startProcess starts the program at path as component name, with its output in
// <Dir>/<name>.log.
func (c *Cluster) startProcess(name, path string, env []string, args ...string) (*child, error) {
	logFile, err := c.openLog(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = c.out.tee(name, logFile)
	cmd.Stderr = cmd.Stdout
	// Die with the test process, even when it is killed before Stop runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	ch := &child{name: name, logPath: c.LogPath(name), cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not the process, and
		// the Go runtime may retire threads; keep this one for as long as the child lives.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		ch.waitErr = cmd.Wait()
		close(ch.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s (see %s): %w", name, ch.logPath, err)
	}
	c.children = append(c.children, ch)
	c.out.printf("Started %s (pid %d, log %s)", name, cmd.Process.Pid, ch.logPath)
	return ch, nil
}

// exitedChild reports the first child that has exited, which during start-up is fatal.
func (c *Cluster) exitedChild() error {
	for _, ch := range c.children {
		select {
		case <-ch.done:
			ch.reported = true
			return fmt.Errorf("%s exited (see %s): %w", ch.name, ch.logPath, exitError(ch.waitErr))
		default:
		}
	}
	return nil
}

// stop terminates the child politely, then forcibly. A child that died on its own before is
// reported, since whatever the test saw afterwards happened without it.
func (ch *child) stop(timeout time.Duration) error {
	select {
	case <-ch.done:
		if ch.reported {
			return nil
		}
		return fmt.Errorf("%s had exited before Stop (see %s): %w", ch.name, ch.logPath, exitError(ch.waitErr))
	default:
	}
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGTERM to %s: %w", ch.name, err)
	}
	select {
	case <-ch.done:
		return nil
	case <-time.After(timeout):
	}
	if err := ch.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", ch.name, err)
	}
	<-ch.done
	return nil
}

// exitError keeps "exited with status 0" from reading like success.
func exitError(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

// output mirrors progress messages and component output to Options.Stdout, if set.
type output struct {
	mu      sync.Mutex
	w       io.Writer
	writers []*prefixWriter
}

func (o *output) printf(format string, args ...any) {
	if o.w == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = fmt.Fprintf(o.w, "[cluster] "+format+"\n", args...)
}

// tee returns the writer for a component's output: its log file, plus Options.Stdout with each
// line prefixed by the component name. Without Stdout it is the file itself, which lets exec
// hand the descriptor straight to the child.
func (o *output) tee(component string, logFile *os.File) io.Writer {
	if o.w == nil {
		return logFile
	}
	pw := &prefixWriter{out: o, prefix: "[" + component + "] "}
	o.mu.Lock()
	o.writers = append(o.writers, pw)
	o.mu.Unlock()
	return io.MultiWriter(logFile, pw)
}

// flush writes out unterminated last lines.
func (o *output) flush() {
	if o.w == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pw := range o.writers {
		if len(pw.buf) > 0 {
			_, _ = fmt.Fprintf(o.w, "%s%s\n", pw.prefix, pw.buf)
			pw.buf = nil
		}
	}
}

// prefixWriter writes whole lines so that concurrent components do not interleave mid-line.
type prefixWriter struct {
	out    *output
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		// A failing mirror must not fail the log file write it shares a MultiWriter with.
		_, _ = fmt.Fprintf(p.out.w, "%s%s", p.prefix, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// reaper kills envtest's etcd and kube-apiserver if the test process dies without Stop
// (killed, timed out, Ctrl-C): envtest starts them in their own process group and without
// Pdeathsig, so they would outlive it. It is a shell blocked reading a pipe that only this
// process holds open; the kernel closes the pipe when this process dies, however it dies.
type reaper struct {
	cmd   *exec.Cmd
	write *os.File
}

func (c *Cluster) startReaper() error {
	api := c.Env.ControlPlane.GetAPIServer()
	pids, err := findChildren(map[string]string{
		c.Env.ControlPlane.Etcd.Path: "--data-dir=" + c.Env.ControlPlane.Etcd.DataDir,
		api.Path:                     "--cert-dir=" + api.CertDir,
	})
	if err != nil {
		return fmt.Errorf("finding envtest's etcd and kube-apiserver processes: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating reaper pipe: %w", err)
	}
	// The shell holds its own copy of the read end.
	defer func() { _ = r.Close() }()
	args := []string{"-c", `read -r _; kill -KILL "$@" 2>/dev/null`, "fixity-cluster-reaper"}
	for _, pid := range pids {
		args = append(args, strconv.Itoa(pid))
	}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin = r
	// Its own process group, so the Ctrl-C that kills go test leaves it alive to act.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return fmt.Errorf("starting reaper for etcd and kube-apiserver: %w", err)
	}
	c.reaper = &reaper{cmd: cmd, write: w}
	return nil
}

func (c *Cluster) stopReaper() error {
	if c.reaper == nil {
		return nil
	}
	defer func() { _ = c.reaper.write.Close() }()
	if err := c.reaper.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing reaper: %w", err)
	}
	_ = c.reaper.cmd.Wait() // "signal: killed" is the expected outcome
	return nil
}

// findChildren returns the pids of this process's children whose argv[0] is a key of want
// and whose arguments include the matching value, one per key.
func findChildren(want map[string]string) ([]int, error) {
	self := strconv.Itoa(os.Getpid())
	found := map[string]int{}
	err := eachProcess(func(pid int, argv []string) {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != self {
			return
		}
		if arg, ok := want[argv[0]]; ok && slices.Contains(argv[1:], arg) {
			found[argv[0]] = pid
		}
	})
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(want))
	for path := range want {
		pid, ok := found[path]
		if !ok {
			return nil, fmt.Errorf("no child process %s", path)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// eachProcess calls fn with the pid and arguments of every process it can read.
func eachProcess(fn func(pid int, argv []string)) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // exited meanwhile, or a kernel thread
		}
		fn(pid, strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"))
	}
	return nil
}
