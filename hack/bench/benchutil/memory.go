package benchutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fixity-dev/fixity/test/cluster"
)

// Memory reads the resident set size and its peak of a process, in bytes.
func Memory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(s.Text(), "VmRSS: %d kB", &kb); n == 1 {
			rss = kb * 1024
		}
		if n, _ := fmt.Sscanf(s.Text(), "VmHWM: %d kB", &kb); n == 1 {
			hwm = kb * 1024
		}
	}
	return rss, hwm, s.Err()
}

// MiB is b bytes in mebibytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// BuildManager builds the manager binary of the checkout at root into dir and returns its path.
func BuildManager(root, dir string) (string, error) {
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the manager: %w", err)
	}
	return bin, nil
}

// Workspace is what every benchmark that runs the manager starts from: the checkout's root, a
// scratch directory, and the manager built into it.
type Workspace struct {
	Root, Dir, Manager string
}

// NewWorkspace finds the checkout, makes a scratch directory named for the benchmark and builds
// the manager into it; Close removes the directory.
func NewWorkspace(name string) (*Workspace, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fixity-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	bin, err := BuildManager(root, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Workspace{Root: root, Dir: dir, Manager: bin}, nil
}

// Close removes the scratch directory.
func (w *Workspace) Close() { _ = os.RemoveAll(w.Dir) }

// ClusterOptions are the local cluster's options with Fixity's CRDs and webhook configurations
// from the checkout at root, and nodes fake nodes.
func ClusterOptions(root string, nodes int) cluster.Options {
	return cluster.Options{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")},
		WebhookPaths:      []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
		Nodes:             nodes,
	}
}
