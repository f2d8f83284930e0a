package builders

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// DocStep is one thing a documentation page tells its reader to do: run Command, or write File
// with Content. A command line ending in "# fails: TEXT" must fail and print TEXT; one ending in
// "# prints: TEXT" must succeed and print it (docs/README.md).
type DocStep struct {
	// Block is the fenced block's info string after the language ("install", "file=web.yaml").
	Block   string
	Command string
	Fails   bool
	Expect  string
	// Eventually ("# eventually prints: TEXT") retries the command until it succeeds and prints
	// TEXT, for up to a minute: what the page says takes a moment.
	Eventually bool
	File       string
	Content    string
}

var fence = regexp.MustCompile("(?ms)^```(\\w+)([^\\n]*)\\n(.*?)^```")

// DocSteps reads the sh and `yaml file=NAME` blocks of a Markdown page, in order.
func DocSteps(path string) ([]DocStep, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []DocStep
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		lang, info, body := m[1], strings.TrimSpace(m[2]), m[3]
		switch {
		case lang == "yaml" && strings.HasPrefix(info, "file="):
			out = append(out, DocStep{Block: info, File: strings.TrimPrefix(info, "file="), Content: body})
		case lang == "sh":
			for _, line := range strings.Split(strings.ReplaceAll(body, "\\\n", " "), "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				s := DocStep{Block: info, Command: line}
				if cmd, text, ok := strings.Cut(line, "# eventually prints: "); ok {
					s.Command, s.Expect, s.Eventually = strings.TrimSpace(cmd), strings.TrimSpace(text), true
				} else if cmd, text, ok := strings.Cut(line, "# fails: "); ok {
					s.Command, s.Fails, s.Expect = strings.TrimSpace(cmd), true, strings.TrimSpace(text)
				} else if cmd, text, ok := strings.Cut(line, "# prints: "); ok {
					s.Command, s.Expect = strings.TrimSpace(cmd), strings.TrimSpace(text)
				}
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no sh block", path)
	}
	return out, nil
}

// RunDocSteps runs the steps of block (the info string, "" for plain sh blocks) in dir with
// env, as a reader would in one shell, failing t at the first step that does not do what the
// page says. It returns how many commands it ran.
func RunDocSteps(t *testing.T, steps []DocStep, block, dir string, env []string) int {
	t.Helper()
	ran := 0
	for _, s := range steps {
		if s.File != "" {
			if err := os.WriteFile(filepath.Join(dir, s.File), []byte(s.Content), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if s.Block != block {
			continue
		}
		run := func() ([]byte, error) {
			cmd := exec.Command("bash", "-o", "pipefail", "-c", s.Command)
			cmd.Dir, cmd.Env = dir, env
			return cmd.CombinedOutput()
		}
		out, err := run()
		for deadline := time.Now().Add(time.Minute); s.Eventually && (err != nil || !strings.Contains(string(out), s.Expect)) && time.Now().Before(deadline); {
			time.Sleep(time.Second) // polling a command, as a reader would retry it
			out, err = run()
		}
		ran++
		switch {
		case s.Fails && err == nil:
			t.Fatalf("%s\nsucceeded; the page says it fails. It printed:\n%s", s.Command, out)
		case !s.Fails && err != nil:
			t.Fatalf("%s\nfailed (%v); the page says it works. It printed:\n%s", s.Command, err, out)
		case !strings.Contains(string(out), s.Expect):
			t.Fatalf("%s\ndoes not print %q, as the page says. It printed:\n%s", s.Command, s.Expect, out)
		}
	}
	return ran
}
