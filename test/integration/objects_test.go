package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const (
	eventually = 30 * time.Second
	poll       = 100 * time.Millisecond
)

// fromYAML builds an object exactly as a user would write it, so that values Go would omit
// (zeros, empty lists) reach the API server.
func fromYAML(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML: %v\n%s", err, doc)
	}
	return u
}

// policyYAML wraps spec lines (indented by two spaces) in an ImmutabilityPolicy named name.
func policyYAML(name, spec string) string {
	return fmt.Sprintf("apiVersion: fixity.dev/v1alpha1\nkind: ImmutabilityPolicy\nmetadata:\n  name: %s\nspec:\n%s", name, indent(spec))
}

// grantYAML wraps spec lines in an AccessGrant named name in namespace ns.
func grantYAML(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: fixity.dev/v1alpha1\nkind: AccessGrant\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, ns, indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// uniqueName keeps tests independent of each other in the shared API server.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

// createPolicy creates a policy and deletes it when the test ends, so that no test's policy
// judges another test's pods.
func createPolicy(t *testing.T, ctx context.Context, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := fromYAML(t, doc)
	gomega.NewWithT(t).Expect(k8s.Create(ctx, obj, client.FieldValidation("Strict"))).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	return obj
}

// isolated scopes a policy to namespaces labelled for one test only.
const isolated = "match:\n  namespaceSelector: {matchLabels: {fixity.dev/test: isolated}}\n"

func createNamespace(t *testing.T, ctx context.Context, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("ns"), Labels: labels}}
	gomega.NewWithT(t).Expect(k8s.Create(ctx, ns)).To(gomega.Succeed())
	return ns.Name
}

// asAlice is the test API server's config acting as user alice, in system:masters: RBAC lets her
// do anything, so only Fixity's webhooks can refuse her, and she is not the operator.
func asAlice() *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"system:masters"}}
	return cfg
}
