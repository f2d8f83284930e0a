package integration

import (
	"context"
	"testing"
	"time"

	"github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/builders"
)

// bind gives user rule in ns (cluster-wide when ns is empty) under a fresh name.
func bind(t *testing.T, ctx context.Context, ns, user string, rule rbacv1.PolicyRule) client.Object {
	t.Helper()
	return builders.Allow(t, ctx, k8s, ns, user, uniqueName("door"), rule)
}

// notes returns the notes of the Events of reason about obj.
func notes(ctx context.Context, obj client.Object, reason string) func(g gomega.Gomega) []string {
	return func(g gomega.Gomega) []string {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(gomega.Succeed())
		var out []string
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() && e.Reason == reason {
				out = append(out, e.Note)
			}
		}
		return out
	}
}

// Who can reach pods past Fixity is asked of the API server's authorizer for every subject the
// bindings name: nodes/proxy anywhere, exec where no policy denies it (and not where one does).
// Each is an Event on the binding, and every policy counts them in status.
func TestRBACReviewFindsTheDoorsPastFixity(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	guarded, pol := imagePolicy(t, ctx, "images:\n  digest: Ignore\n")
	open := createNamespace(t, ctx, nil)
	eve, dave := uniqueName("eve"), uniqueName("dave")

	proxy := bind(t, ctx, "", eve, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}})
	exec := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}}
	execOpen := bind(t, ctx, open, dave, exec)
	execGuarded := bind(t, ctx, guarded, dave, exec)

	g.Eventually(notes(ctx, proxy, fixityv1.EventAccessPastFixity), eventually, poll).Should(gomega.ContainElement(
		"User " + eve + " can reach the kubelet through nodes/proxy (exec, attach, port-forward straight to its port, where no admission runs) (bound by ClusterRoleBinding " + proxy.GetName() + ")"))
	g.Eventually(notes(ctx, execOpen, fixityv1.EventAccessPastFixity), eventually, poll).Should(gomega.ContainElement(
		gomega.HavePrefix("User " + dave + " can create pods/exec in namespace(s) " + open + ", where no policy denies exec")))
	g.Eventually(func(g gomega.Gomega) *fixityv1.ImmutabilityPolicy {
		p := &fixityv1.ImmutabilityPolicy{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: pol}, p)).To(gomega.Succeed())
		return p
	}, eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.AccessFindings", gomega.BeNumerically(">=", 2)),
		gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.And(
			gomega.HaveField("Type", fixityv1.AccessReviewedCondition), gomega.HaveField("Status", metav1.ConditionFalse),
			gomega.HaveField("Reason", fixityv1.BypassFoundReason)))),
	))
	// The other doors: granting oneself anything, and rewriting what Fixity relies on.
	for _, door := range []struct {
		rule rbacv1.PolicyRule
		note string
	}{
		{rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"escalate"}}, "can escalate roles, and so grant itself anything"},
		{rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, Verbs: []string{"bind"}}, "can bind roles, and so grant itself anything"},
		{rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"patch"}}, "can change the webhook configurations Fixity relies on"},
		{rbacv1.PolicyRule{APIGroups: []string{"fixity.dev"}, Resources: []string{"nodebaselines"}, Verbs: []string{"update"}}, "can change the node baselines Fixity relies on"},
	} {
		user := uniqueName("user")
		b := bind(t, ctx, "", user, door.rule)
		g.Eventually(notes(ctx, b, fixityv1.EventAccessPastFixity), eventually, poll).Should(gomega.ContainElement(
			gomega.HavePrefix("User "+user+" "+door.note)), door.note)
	}
	// The review that found dave's exec in the open namespace also asked about the guarded one,
	// where the policy denies exec: no door there.
	g.Consistently(notes(ctx, execGuarded, fixityv1.EventAccessPastFixity), 2*time.Second, poll).Should(gomega.BeEmpty())
}
