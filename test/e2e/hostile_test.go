package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// The hostile suite: one test per attempt to get into a pod, or to hide from Fixity, by a door
// other than the guarded one. The attempts also covered elsewhere: grant lending
// (TestAccessGrantLetsOnlyItsRequesterInAndIsAudited), approval by a name the requester can act
// as (TestAccessGrantWaitsForASecondPerson), relabelling out of a policy
// (TestPodCannotBeRelabelledOutOfItsPolicy), forged annotations on create and through the status
// subresource (TestAuditModeAndForgedAnnotations, TestAccessGrantLetsOnlyItsRequesterInAndIsAudited),
// a privileged debug profile (TestDebugNeedsAGrant).

// A grant lets its requester into pods of its own namespace only: one naming a pod of another
// namespace opens nothing there.
func TestHostileGrantForAPodOfAnotherNamespace(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	shop := enforcedNamespace(t, ctx)
	runningPod(t, ctx, shop, "web")
	own := uniqueName("alice")
	g.Expect(env.CreateNamespace(ctx, own)).To(gomega.Succeed())

	out, err := alice.kubectlStdin(grantManifest(own, "elsewhere", "web", "Exec", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(getGrant(ctx, own, "elsewhere"), eventually, poll).Should(gomega.HaveField("Status.Phase", fixityv1.GrantActive))
	out, err = alice.kubectl("exec", "-n", shop, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(deniedBy))
	g.Expect(out).To(gomega.ContainSubstring("no AccessGrant of alice covers pod web for Exec"))
}

// The kubelet's exec endpoint through the API server's nodes/proxy is decided as pods/exec:
// holding nodes/proxy is no way around a policy denying exec.
func TestHostileExecThroughNodesProxy(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	mallory := newUser(t, "mallory")
	ns := enforcedNamespace(t, ctx)
	pod := runningPod(t, ctx, ns, "web")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kubelet-proxy-" + ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}}}
	g.Expect(k8s.Create(ctx, role)).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, binding)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), binding); _ = k8s.Delete(context.Background(), role) })

	for _, path := range []string{
		fmt.Sprintf("exec/%s/web/web?command=true&output=1", ns),
		fmt.Sprintf("run/%s/web/web?cmd=true", ns),
		fmt.Sprintf("stats/../attach/%s/web/web", ns),
	} {
		g.Eventually(func(g gomega.Gomega) {
			out, err := mallory.kubectl("create", "--raw", "/api/v1/nodes/"+pod.Spec.NodeName+"/proxy/"+path, "-f", "/dev/null")
			g.Expect(err).To(gomega.HaveOccurred(), out)
			g.Expect(out).To(gomega.ContainSubstring(`admission webhook "nodeproxy.fixity.dev" denied the request`), path)
			g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("[policy %s]", ns)), path)
		}, eventually, poll).Should(gomega.Succeed(), "RBAC takes the new binding at once; the loop only absorbs its cache")
	}
	// The door itself is reported: mallory can reach the kubelet where no admission runs.
	g.Eventually(events(ctx, metav1.NamespaceDefault, binding.Name), eventually, poll).Should(gomega.ContainElement(
		gomega.HavePrefix(fixityv1.EventAccessPastFixity + ": User mallory can reach the kubelet through nodes/proxy")))
}

// A pod's fixity.dev/* records cannot be forged through the binding subresource, which copies
// the binding's annotations onto the pod.
func TestHostileForgedRecordThroughABinding(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	mallory := newUser(t, "mallory")
	ns := enforcedNamespace(t, ctx)
	// A pod no node fits stays unbound, so mallory can bind it herself.
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pending"},
		Spec: corev1.PodSpec{NodeSelector: map[string]string{"fixity.dev/no-such-node": "true"},
			Containers: []corev1.Container{{Name: "web", Image: image}}},
	}
	g.Expect(k8s.Create(ctx, pending)).To(gomega.Succeed())
	allow(t, ctx, ns, "mallory", "binder", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/binding"}, Verbs: []string{"create"}})
	binding := fmt.Sprintf(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"pending","annotations":{%q:"InteractiveAccess: none"}},"target":{"kind":"Node","name":"kwok-node-0"}}`,
		fixityv1.VerifiedAnnotation)
	out, err := mallory.kubectlStdin(binding, "create", "--raw", "/api/v1/namespaces/"+ns+"/pods/pending/binding", "-f", "-")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(`admission webhook "podmetadata.fixity.dev" denied the request: only the Fixity operator may add, change or remove fixity.dev/* annotations; mallory changed ` + fixityv1.VerifiedAnnotation))
	// The same binding without the forged record is the scheduler's business, not Fixity's.
	plain := `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"pending"},"target":{"kind":"Node","name":"kwok-node-0"}}`
	out, err = mallory.kubectlStdin(plain, "create", "--raw", "/api/v1/namespaces/"+ns+"/pods/pending/binding", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
}
