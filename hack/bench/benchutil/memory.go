package benchutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
