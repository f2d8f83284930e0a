package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/builders"
)

// The pages in docs/ do what they say: every command of the platform team's page runs as the
// cluster's admin, then every command of the developers' page as alice, a developer, against
// the local cluster and the loopback registry.
func TestDocs(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	cosign := filepath.Join(root, "bin", "cosign", "cosign")
	if _, err := os.Stat(cosign); err != nil {
		t.Fatalf("no cosign CLI: run the tests with make test, which builds it (make cosign): %v", err)
	}
	// The tools a reader has on PATH.
	bin := t.TempDir()
	for name, target := range map[string]string{
		"kubectl": filepath.Join(env.BinDir, "kubectl"), "kubectl-fixity": pluginBin, "cosign": cosign,
	} {
		g.Expect(os.Symlink(target, filepath.Join(bin, name))).To(gomega.Succeed())
	}
	// What the release pipeline pushed before the reader starts.
	for _, tag := range []string{"1.0", "2.0"} {
		_, err := reg.PushRandomImage(ctx, "shop/web", tag)
		g.Expect(err).NotTo(gomega.HaveOccurred())
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = k8s.Delete(ctx, &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "production"}})
		_ = k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
		_ = k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fixityv1.OperatorNamespace, Name: "cosign-pub"}})
	})

	work := t.TempDir()
	alice := newUser(t, "alice")
	for _, page := range []struct{ file, kubeconfig string }{
		{"platform-team.md", env.KubeconfigPath},
		{"developers.md", alice.kubeconfig},
	} {
		ok := t.Run(page.file, func(t *testing.T) {
			steps, err := builders.DocSteps(filepath.Join(root, "docs", page.file))
			if err != nil {
				t.Fatal(err)
			}
			shell := []string{
				"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + work, "KUBECONFIG=" + page.kubeconfig,
				"REGISTRY=" + reg.Host(), "TUF_ROOT=" + filepath.Join(work, ".sigstore"),
			}
			if n := builders.RunDocSteps(t, steps, "", work, shell); n == 0 {
				t.Fatalf("%s runs no command", page.file)
			}
		})
		if !ok {
			return // the next page starts where this one ends
		}
	}
}
