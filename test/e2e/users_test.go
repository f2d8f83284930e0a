package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// developers is the group of the test users: what a developer typically may do in a namespace,
// including exec and debug, which Fixity then restricts. RBAC grants; Fixity takes away.
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
		ctx := context.Background()
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-developer"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list", "watch", "create", "delete", "patch", "update"}},
				{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"get", "create"}},
				{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"get", "patch", "update"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "create", "delete", "patch"}},
				{APIGroups: []string{"fixity.dev"}, Resources: []string{"accessgrants"}, Verbs: []string{"get", "list", "watch", "create", "delete", "patch", "update"}},
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
			},
		}
		g.Expect(k8s.Create(ctx, role)).To(gomega.Succeed())
		g.Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-developers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: developers}},
		})).To(gomega.Succeed())
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
