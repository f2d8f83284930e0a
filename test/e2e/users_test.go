package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// developers is the group of the test users, bound by config/samples/developer_role.yaml to
// what a developer typically may do, exec and debug included, which Fixity then restricts.
const developers = "developers"

var rbacOnce sync.Once

// user is a person with a client certificate, running kubectl as themselves.
type user struct {
	name       string
	kubeconfig string
}

func newUser(t *testing.T, name string) user {
	t.Helper()
	g := gomega.NewWithT(t)
	rbacOnce.Do(func() {
		out, err := exec.Command(filepath.Join(env.BinDir, "kubectl"), "--kubeconfig", env.KubeconfigPath,
			"apply", "-f", filepath.Join(root, "config", "samples", "developer_role.yaml")).CombinedOutput()
		g.Expect(err).NotTo(gomega.HaveOccurred(), string(out))
	})
	au, err := env.Env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{developers}}, nil)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	kc, err := au.KubeConfig()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	g.Expect(os.WriteFile(path, kc, 0o600)).To(gomega.Succeed())
	return user{name: name, kubeconfig: path}
}

// kubectl runs kubectl as u and returns its combined output.
func (u user) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", u.kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectlStdin runs kubectl as u with stdin.
func (u user) kubectlStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(env.BinDir, "kubectl"), append([]string{"--kubeconfig", u.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Fixity's denials come from its webhooks; an admitted exec or port-forward against a KWOK node
// fails afterwards, when the API server dials the (fake) kubelet.
const deniedBy = `admission webhook "podaccess.fixity.dev" denied the request`

func admittedPastFixity(out string) bool {
	return !strings.Contains(out, "fixity.dev") && (strings.Contains(out, "dial") || strings.Contains(out, "connect") ||
		strings.Contains(out, "backend") || strings.Contains(out, "upgrade"))
}
