package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/builders"
)

// healthOf judges obj as the API server serves it now, as kstatus and Argo CD do.
func healthOf(ctx context.Context, script string, obj client.Object) func(g gomega.Gomega) builders.Health {
	return func(g gomega.Gomega) builders.Health {
		h, err := builders.JudgeLive(ctx, k8s, script, obj)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		return h
	}
}

// Every kind's status reads as kstatus and Argo CD expect: Current and Healthy when the operator
// is done with it, InProgress and Progressing while it waits (a generation not yet observed, a
// grant waiting for approval, an approval that no longer counts), Failed and Degraded when only
// an edit helps (a policy that cannot be enforced). The printer columns show counts of 0.
func TestKindsHealthForKstatusAndArgoCD(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	script, err := builders.ArgoHealthCheck("../..")
	g.Expect(err).NotTo(gomega.HaveOccurred())

	// A new object reads observedGeneration 0 until the operator has looked at it.
	fresh := fromYAML(t, policyYAML(uniqueName("fresh"), isolated))
	g.Expect(k8s.Create(ctx, fresh, client.DryRunAll)).To(gomega.Succeed())
	g.Expect(builders.Judge(script, fresh)).To(gomega.Equal(builders.InProgress), "a policy the operator has not looked at: %v", fresh.Object["status"])
	g.Expect(fresh.Object["status"]).To(gomega.And(gomega.HaveKeyWithValue("matchedPods", int64(0)), gomega.HaveKeyWithValue("driftedPods", int64(0))),
		"kubectl get prints 0 before the operator has counted")

	ns, ready := imagePolicy(t, ctx, "runtime:\n  approvals: 1\n")
	policy := &unstructured.Unstructured{}
	policy.SetGroupVersionKind(fixityv1.GroupVersion.WithKind("ImmutabilityPolicy"))
	policy.SetName(ready)
	g.Eventually(healthOf(ctx, script, policy), eventually, poll).Should(gomega.Equal(builders.Current))
	g.Expect(printed(t, ctx, "immutabilitypolicies", "", ready)).To(gomega.And(
		gomega.HaveKeyWithValue("Matched", float64(0)), gomega.HaveKeyWithValue("Drifted", float64(0)), gomega.HaveKeyWithValue("Ready", "True")))

	invalid := createPolicy(t, ctx, policyYAML(uniqueName("badregexp"), isolated+verifyWith("", strings.Replace(strings.Replace(keyless, "subject: ", "subjectRegExp: ", 1),
		"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "'^https://github.com/acme/(unclosed'", 1))))
	g.Eventually(healthOf(ctx, script, invalid), eventually, poll).Should(gomega.Equal(builders.Failed))

	nodes := createPolicy(t, ctx, nodePolicyYAML(uniqueName("nipol"), "{}"))
	g.Eventually(healthOf(ctx, script, nodes), eventually, poll).Should(gomega.Equal(builders.Current))
	g.Expect(printed(t, ctx, "nodeimmutabilitypolicies", "", nodes.GetName())).To(gomega.And(
		gomega.HaveKeyWithValue("Matched", float64(0)), gomega.HaveKeyWithValue("Drifted", float64(0))))

	// A grant by dana waits for a second person (InProgress), then is Active (Current); bob's approval
	// counts (Current) until the grant is made again under the same name, when it names an
	// earlier grant and counts for nothing (Ready False: InProgress, as kstatus reads it).
	// The requester may only manage grants: one who could act as bob would make his approval
	// no second person's.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grants"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{fixityv1.GroupVersion.Group}, Resources: []string{"accessgrants"}, Verbs: []string{"get", "create", "delete"}}}}
	g.Expect(k8s.Create(ctx, role)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dana-grants"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "dana"}}})).To(gomega.Succeed())
	as := func(user string, groups ...string) client.Client {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
		c, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
		g.Expect(err).NotTo(gomega.HaveOccurred())
		return c
	}
	dana, bob := as("dana"), as("bob", "system:masters")
	grantDoc := grantYAML(ns, "inc-1", "pods: [web-0]\naccess: [Exec]\nduration: 10m\nreason: \"INC-1: checkout returns 500\"")
	grant := fromYAML(t, grantDoc)
	g.Expect(dana.Create(ctx, grant)).To(gomega.Succeed())
	g.Eventually(healthOf(ctx, script, grant), eventually, poll).Should(gomega.Equal(builders.InProgress))
	approval := fromYAML(t, fmt.Sprintf("apiVersion: fixity.dev/v1alpha1\nkind: AccessApproval\nmetadata: {name: inc-1-bob, namespace: %s}\nspec: {grant: inc-1}\n", ns))
	g.Expect(bob.Create(ctx, approval)).To(gomega.Succeed())
	g.Eventually(healthOf(ctx, script, grant), eventually, poll).Should(gomega.Equal(builders.Current))
	g.Eventually(healthOf(ctx, script, approval), eventually, poll).Should(gomega.Equal(builders.Current))
	g.Expect(dana.Delete(ctx, grant)).To(gomega.Succeed())
	g.Eventually(func() error { return dana.Create(ctx, fromYAML(t, grantDoc)) }, eventually, poll).Should(gomega.Succeed(), "made again once the first is gone")
	g.Eventually(healthOf(ctx, script, approval), eventually, poll).Should(gomega.Equal(builders.InProgress))
	g.Expect(printed(t, ctx, "accessapprovals", ns, approval.GetName())).To(gomega.HaveKeyWithValue("Ready", "False"))
}

// printed is the row kubectl get prints for a Fixity object: the API server's Table, column
// name to cell (a JSON number is float64; a missing value is absent, printed blank).
func printed(t *testing.T, ctx context.Context, resource, namespace, name string) map[string]any {
	t.Helper()
	g := gomega.NewWithT(t)
	hc, err := rest.HTTPClientFor(env.Config)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	path := "/apis/" + fixityv1.GroupVersion.String() + "/"
	if namespace != "" {
		path += "namespaces/" + namespace + "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+path+resource+"/"+name, nil)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	g.Expect(resp.StatusCode).To(gomega.Equal(http.StatusOK), "GET %s", req.URL)
	var table metav1.Table
	g.Expect(json.NewDecoder(resp.Body).Decode(&table)).To(gomega.Succeed())
	g.Expect(table.Rows).To(gomega.HaveLen(1))
	row := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		if v := table.Rows[0].Cells[i]; v != nil {
			row[c.Name] = v
		}
	}
	return row
}
