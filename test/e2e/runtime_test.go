package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/builders"
)

// runningPod creates a plain pod (as the admin) and waits until KWOK runs it.
func runningPod(t *testing.T, ctx context.Context, ns, name string) *corev1.Pod {
	t.Helper()
	g := gomega.NewWithT(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
	}
	g.Expect(k8s.Create(ctx, pod)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(gomega.Succeed())
		g.Expect(pod.Status.Phase).To(gomega.Equal(corev1.PodRunning))
	}, eventually, poll).Should(gomega.Succeed())
	return pod
}

func grantManifest(ns, name, pods, access, duration string) string {
	return fmt.Sprintf(`apiVersion: fixity.dev/v1alpha1
kind: AccessGrant
metadata: {name: %s, namespace: %s}
spec:
  pods: [%s]
  access: [%s]
  duration: %s
  reason: "INC-1234: checkout returns 500"
`, name, ns, pods, access, duration)
}

func getGrant(ctx context.Context, ns, name string) func(g gomega.Gomega) *fixityv1.AccessGrant {
	return func(g gomega.Gomega) *fixityv1.AccessGrant {
		grant := &fixityv1.AccessGrant{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, grant)).To(gomega.Succeed())
		return grant
	}
}

// events returns the reasons and notes of the events about obj.
func events(ctx context.Context, ns, name string) func(g gomega.Gomega) []string {
	return func(g gomega.Gomega) []string {
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(gomega.Succeed())
		var out []string
		for _, e := range list.Items {
			if e.Regarding.Name == name {
				out = append(out, e.Reason+": "+e.Note)
			}
		}
		return out
	}
}

func TestExecAttachAndPortForwardAreLockedDown(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx)
	runningPod(t, ctx, ns, "web")

	out, err := alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(deniedBy))
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("[policy %s] exec into pod web is denied (runtime.exec: Deny)", ns)))
	g.Expect(out).To(gomega.ContainSubstring("create an AccessGrant"), "the message says what to do")

	out, err = alice.kubectl("attach", "-n", ns, "web")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("attach into pod web is denied (runtime.exec: Deny)"))

	// portForward defaults to Allow: admitted, then fails dialing the fake kubelet.
	out, err = alice.kubectl("port-forward", "-n", ns, "pod/web", "0:80")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), out)

	strict := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.PortForward = fixityv1.Deny })
	runningPod(t, ctx, strict, "web")
	out, err = alice.kubectl("port-forward", "-n", strict, "pod/web", "0:80")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("port-forward into pod web is denied (runtime.portForward: Deny)"))

	// A namespace no policy matches is not locked down.
	free := uniqueName("free")
	g.Expect(env.CreateNamespace(ctx, free)).To(gomega.Succeed())
	runningPod(t, ctx, free, "web")
	out, _ = alice.kubectl("exec", "-n", free, "web", "--", "true")
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), out)
}

// A pod cannot be relabelled out of a policy's podSelector, which would let exec in without a
// grant; labels that keep it in the policy may change.
func TestPodCannotBeRelabelledOutOfItsPolicy(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Match.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	})
	runningPod(t, ctx, ns, "web")

	out, err := alice.kubectl("label", "-n", ns, "pod/web", "app=quarantined", "--overwrite")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf(`admission webhook "pods.fixity.dev" denied the request: [policy %s] alice may not change the labels of pod web so that the policy no longer matches it (match.podSelector)`, ns)))
	out, err = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(deniedBy), "still locked down")

	out, err = alice.kubectl("label", "-n", ns, "pod/web", "team=shop")
	g.Expect(err).NotTo(gomega.HaveOccurred(), "a label that keeps the pod in the policy: %s", out)

	// Not through the status subresource either, which keeps the labels it is sent.
	mallory := newUser(t, "mallory")
	statusWriter(t, ctx, ns, "mallory")
	out, err = mallory.kubectl("patch", "-n", ns, "pod/web", "--subresource=status", "--type=merge",
		"-p", `{"metadata":{"labels":{"app":"quarantined"}}}`)
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf(`admission webhook "podmetadata.fixity.dev" denied the request: [policy %s] mallory may not change the labels of pod web`, ns)))
}

func TestAccessGrantLetsOnlyItsRequesterInAndIsAudited(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	ns := enforcedNamespace(t, ctx)
	runningPod(t, ctx, ns, "web")

	out, err := alice.kubectlStdin(grantManifest(ns, "inc-1234", "web, db-0", "Exec", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring("pod db-0 does not exist"), "a grant may name a pod that appears later, with a warning")
	g.Eventually(getGrant(ctx, ns, "inc-1234"), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.Requester", "alice"),
		gomega.HaveField("Status.Phase", fixityv1.GrantActive),
		gomega.HaveField("Status.ExpiresAt", gomega.Not(gomega.BeNil())),
	))

	out, err = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred(), "KWOK has no kubelet to exec into")
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), "alice holds the grant: %s", out)
	// The taint is written before the exec is let through, not later by a controller that
	// ending the grant early could outrun.
	tainted := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, tainted)).To(gomega.Succeed())
	g.Expect(tainted.Annotations).To(gomega.HaveKeyWithValue(fixityv1.TaintedAnnotation,
		fmt.Sprintf("%s: exec by alice under grant %s/inc-1234", fixityv1.CheckInteractiveAccess, ns)))

	out, err = bob.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(deniedBy))
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("grant %s/inc-1234 belongs to alice, not bob", ns)))

	// The grant does not include Attach.
	out, _ = alice.kubectl("attach", "-n", ns, "web")
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("grant %s/inc-1234 does not include Attach", ns)))

	// Audit trail: the session and Events on the pod and the grant (the taint is checked above).
	g.Eventually(getGrant(ctx, ns, "inc-1234"), eventually, poll).Should(gomega.HaveField("Status.Sessions", gomega.ConsistOf(
		gomega.And(gomega.HaveField("Pod", "web"), gomega.HaveField("Access", fixityv1.AccessExec), gomega.HaveField("User", "alice")),
	)))
	g.Eventually(events(ctx, ns, "web"), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventInteractiveAccess + ": Exec by alice on pod web")))
	g.Eventually(events(ctx, ns, "inc-1234"), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventAccessGranted + ": Exec by alice on pod web")))

	// Nobody else may forge or remove the taint; the spec cannot be widened.
	out, err = alice.kubectl("annotate", "-n", ns, "pod/web", fixityv1.TaintedAnnotation+"-")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("only the Fixity operator may add, change or remove fixity.dev/* annotations; alice changed fixity.dev/tainted"))
	// Not through the status subresource either, which keeps the annotations it is sent.
	mallory := newUser(t, "mallory")
	statusWriter(t, ctx, ns, "mallory")
	out, err = mallory.kubectl("patch", "-n", ns, "pod/web", "--subresource=status", "--type=merge",
		"-p", `{"metadata":{"annotations":{"fixity.dev/tainted":null}}}`)
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(`admission webhook "podmetadata.fixity.dev" denied the request: only the Fixity operator may add, change or remove fixity.dev/* annotations; mallory changed fixity.dev/tainted`))
	out, err = mallory.kubectl("patch", "-n", ns, "pod/web", "--subresource=status", "--type=merge",
		"-p", `{"metadata":{"annotations":{"team":"shop"}},"status":{"message":"ok"}}`)
	g.Expect(err).NotTo(gomega.HaveOccurred(), "status updates that leave fixity.dev/* alone are not Fixity's business: %s", out)
	out, err = alice.kubectl("patch", "-n", ns, "accessgrant/inc-1234", "--type=merge", "-p", `{"spec":{"duration":"1h"}}`)
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("spec is immutable"))
	out, err = bob.kubectl("annotate", "-n", ns, "accessgrant/inc-1234", "--overwrite", "fixity.dev/requester=bob")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("only the Fixity operator may change fixity.dev/requester"))

	// Deleting the grant revokes it at once.
	out, err = alice.kubectl("delete", "-n", ns, "accessgrant/inc-1234", "--wait=true")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	out, _ = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(out).To(gomega.ContainSubstring(deniedBy), "a deleted grant lets nobody in")
	g.Eventually(events(ctx, ns, "web"), eventually, poll).Should(gomega.ContainElement(gomega.ContainSubstring("was revoked")))
}

func TestAccessGrantExpires(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx)
	runningPod(t, ctx, ns, "web")

	out, err := alice.kubectlStdin(grantManifest(ns, "short", "web", "Exec", "4s"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	out, _ = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), out)

	// The controller moves the grant to Expired at expiresAt (it requeues for that moment).
	g.Eventually(getGrant(ctx, ns, "short"), 30*time.Second, poll).Should(gomega.And(
		gomega.HaveField("Status.Phase", fixityv1.GrantExpired),
		gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.And(
			gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionFalse),
			gomega.HaveField("Reason", "Expired")))),
	))
	out, _ = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("grant %s/short ended at", ns)))
	// The pod it let alice into is marked for replacement.
	g.Eventually(events(ctx, ns, "web"), eventually, poll).Should(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventReplacementDue + ":")))
	pod := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, pod)).To(gomega.Succeed())
	g.Expect(pod.Annotations).To(gomega.HaveKey(fixityv1.TaintedAnnotation))
}

// A grant where no policy applies is allowed, with a warning that it is not needed.
func TestGrantWithoutPolicyWarns(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := uniqueName("free")
	g.Expect(env.CreateNamespace(ctx, ns)).To(gomega.Succeed())
	out, err := alice.kubectlStdin(grantManifest(ns, "g", "web", "Exec", "1m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("no ImmutabilityPolicy applies to namespace %s, so this grant is not needed", ns)))
}

func TestDebugNeedsAGrant(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx)
	runningPod(t, ctx, ns, "web")

	// The general profile also adds SYS_PTRACE: the user is told both things at once.
	out, err := alice.kubectl("debug", "-n", ns, "pod/web", "--image="+image, "--profile=general", "--container=ptrace")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(`admission webhook "pods.fixity.dev" denied the request`))
	g.Expect(out).To(gomega.ContainSubstring("debug (ephemeral container) into pod web is denied (runtime.ephemeralContainers: Deny)"))
	g.Expect(out).To(gomega.ContainSubstring(`non-default capabilities: container "ptrace" must not include "SYS_PTRACE"`))

	debug := []string{"debug", "-n", ns, "pod/web", "--image=" + image, "--profile=baseline", "--container=dbg"}
	out, err = alice.kubectl(debug...)
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("debug (ephemeral container) into pod web is denied (runtime.ephemeralContainers: Deny)"))

	out, err = alice.kubectlStdin(grantManifest(ns, "dbg", "web", "Debug", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	out, err = alice.kubectl(debug...)
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(getGrant(ctx, ns, "dbg"), eventually, poll).Should(gomega.HaveField("Status.Sessions", gomega.ContainElement(
		gomega.And(gomega.HaveField("Access", fixityv1.AccessDebug), gomega.HaveField("User", "alice")))))

	// A privileged debug container is still refused, grant or not.
	out, err = alice.kubectl("debug", "-n", ns, "pod/web", "--image="+image, "--profile=sysadmin", "--container=root")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("privileged"))
}

func TestPrivilegedPodsAreDenied(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	ns := enforcedNamespace(t, ctx)

	out, err := alice.kubectl("run", "-n", ns, "root", "--image="+image, "--privileged")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring(`admission webhook "pods.fixity.dev" denied the request`))
	g.Expect(out).To(gomega.ContainSubstring(`privileged: container "root" must not set securityContext.privileged=true`))

	out, err = alice.kubectl("debug", "-n", ns, "node/kwok-node-0", "--image="+image, "--profile=sysadmin")
	g.Expect(err).To(gomega.HaveOccurred())
	g.Expect(out).To(gomega.ContainSubstring("host namespaces: hostNetwork=true, hostPID=true, hostIPC=true"))
	g.Expect(out).To(gomega.ContainSubstring("hostPath volumes: volume"))

	// Workloads are refused at apply time, with the same messages.
	dep := deployment(ns, "escalate", 1)
	dep.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptrTo(true),
		Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}},
	}
	err = k8s.Create(ctx, dep)
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`admission webhook "workloads.fixity.dev" denied the request`),
		gomega.ContainSubstring(`non-default capabilities: container "web" must not include "SYS_ADMIN" in securityContext.capabilities.add`),
		gomega.ContainSubstring(`container "web": container sets securityContext.allowPrivilegeEscalation=true`),
	)))

	// readOnlyRootFilesystem: Require, in Audit mode: allowed, with warnings kubectl prints.
	audit := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Mode = fixityv1.ModeAudit
		s.Runtime.ReadOnlyRootFilesystem = fixityv1.Require
	})
	out, err = alice.kubectl("run", "-n", audit, "writable", "--image="+image, "--privileged")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf(`Warning: audit: [policy %s] privileged`, audit)))
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf(`Warning: audit: [policy %s] container "writable": container must set securityContext.readOnlyRootFilesystem=true`, audit)))
}

func ptrTo[T any](v T) *T { return &v }

// statusWriter lets user write pods/status in ns, as a node or a status-reporting controller may.
func statusWriter(t *testing.T, ctx context.Context, ns, user string) {
	t.Helper()
	allow(t, ctx, ns, user, "pod-status", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"get", "patch", "update"}})
}

// allow gives user rule in ns (cluster-wide when ns is empty), by a role named name-user.
func allow(t *testing.T, ctx context.Context, ns, user, name string, rule rbacv1.PolicyRule) client.Object {
	t.Helper()
	return builders.Allow(t, ctx, k8s, ns, user, name+"-"+user, rule)
}

// Audit mode lets exec through with a warning, and nobody can smuggle fixity.dev/* annotations
// in on a new pod: they are dropped at admission.
func TestAuditModeAndForgedAnnotations(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice := newUser(t, "alice")
	audit := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Mode, s.Runtime.PortForward = fixityv1.ModeAudit, fixityv1.Deny
	})
	runningPod(t, ctx, audit, "web")
	for _, args := range [][]string{
		{"exec", "-n", audit, "web", "--", "true"},
		{"attach", "-n", audit, "web"},
		{"port-forward", "-n", audit, "pod/web", "0:80"},
	} {
		out, _ := alice.kubectl(args...)
		g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), "Audit never denies %s: %s", args[0], out)
	}
	// kubectl debug is admitted too, and the user is told what Enforce would say.
	out, err := alice.kubectl("debug", "-n", audit, "pod/web", "--image="+image, "--profile=baseline", "--container=dbg")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("audit: [policy %s] debug (ephemeral container) into pod web is denied (runtime.ephemeralContainers: Deny)", audit)))

	ns := enforcedNamespace(t, ctx)
	out, err = alice.kubectlStdin(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: forged
  namespace: %s
  annotations:
    fixity.dev/verified: '{"web":{"digest":"sha256:forged","authorities":["release"]}}'
    fixity.dev/tainted: ""
    team: shop
spec:
  containers: [{name: web, image: %q}]
`, ns, image), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	pod := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "forged"}, pod)).To(gomega.Succeed())
	g.Expect(pod.Annotations).NotTo(gomega.HaveKey(fixityv1.TaintedAnnotation))
	g.Expect(pod.Annotations).NotTo(gomega.HaveKeyWithValue(fixityv1.VerifiedAnnotation, gomega.ContainSubstring("forged")))
	g.Expect(pod.Annotations).To(gomega.HaveKeyWithValue("team", "shop"), "other annotations are kept")
}

// Every container kind is judged, and readOnlyRootFilesystem: Require denies in Enforce.
func TestInitContainersAndReadOnlyRootFilesystem(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.ReadOnlyRootFilesystem = fixityv1.Require })

	dep := deployment(ns, "web", 1)
	dep.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: image,
		SecurityContext: &corev1.SecurityContext{Privileged: ptrTo(true), ReadOnlyRootFilesystem: ptrTo(true)}}}
	dep.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptrTo(false)}
	err := k8s.Create(ctx, dep)
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`privileged: container "setup" must not set securityContext.privileged=true`),
		gomega.ContainSubstring(`container "web": container must set securityContext.readOnlyRootFilesystem=true`),
		gomega.Not(gomega.ContainSubstring(`container "setup": init container must set`)),
	)))

	dep = deployment(ns, "web", 1)
	dep.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptrTo(true)}
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed(), "a compliant workload is admitted")
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(readyPods(ctx, ns, "web")(g)).To(gomega.HaveLen(1))
	}, eventually, poll).Should(gomega.Succeed())
}

func approvalManifest(ns, name, grant string) string {
	return fmt.Sprintf("apiVersion: fixity.dev/v1alpha1\nkind: AccessApproval\nmetadata: {name: %s, namespace: %s}\nspec: {grant: %s}\n", name, ns, grant)
}

// Where a policy asks for an approval, a grant lets nobody in until a second person approves it:
// not its requester, not a name the requester can act as, and each approver counts once. Its
// duration runs from the approval.
func TestAccessGrantWaitsForASecondPerson(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.Approvals = 1 })
	runningPod(t, ctx, ns, "web")

	out, err := alice.kubectlStdin(grantManifest(ns, "inc-77", "web", "Exec", "10m"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Eventually(getGrant(ctx, ns, "inc-77"), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.Phase", fixityv1.GrantPending),
		gomega.HaveField("Status.RequiredApprovals", int32(1)),
		gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.And(
			gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionFalse),
			gomega.HaveField("Reason", string(fixityv1.GrantPending)), gomega.HaveField("Message", gomega.ContainSubstring("Waiting for 1 more approval(s) by users other than alice"))))),
	))
	out, _ = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(out).To(gomega.ContainSubstring(deniedBy))
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("grant %s/inc-77 waits for 1 more approval(s) by users other than alice", ns)))

	// Alice cannot approve her own grant, neither as herself nor as a service account she can
	// impersonate.
	out, err = alice.kubectlStdin(approvalManifest(ns, "inc-77-alice", "inc-77"), "apply", "-f", "-")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("alice requested AccessGrant %s/inc-77 and cannot approve it", ns)))
	helper := "system:serviceaccount:" + ns + ":helper"
	impersonator(t, ctx, ns, "alice", "helper")
	approver(t, ctx, ns, helper)
	out, err = alice.kubectlStdin(approvalManifest(ns, "inc-77-helper", "inc-77"), "apply", "--as", helper, "-f", "-")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("alice requested AccessGrant %s/inc-77 and can impersonate service account %s/helper", ns, ns)))

	// Bob approves: the grant is Active for its duration from his approval, and alice is let in.
	out, err = bob.kubectlStdin(approvalManifest(ns, "inc-77-bob", "inc-77"), "apply", "-f", "-")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	approval := &fixityv1.AccessApproval{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "inc-77-bob"}, approval)).To(gomega.Succeed())
	g.Eventually(getGrant(ctx, ns, "inc-77"), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.Phase", fixityv1.GrantActive),
		gomega.HaveField("Status.Approvals", gomega.ConsistOf(gomega.And(gomega.HaveField("User", "bob"), gomega.HaveField("Approval", "inc-77-bob")))),
		gomega.HaveField("Status.ExpiresAt.Time", gomega.BeTemporally("==", approval.CreationTimestamp.Add(10*time.Minute))),
	))
	g.Eventually(events(ctx, ns, "inc-77"), eventually, poll).Should(gomega.ContainElement(
		gomega.HavePrefix(fixityv1.EventGrantApproved + ": bob approved the grant in AccessApproval inc-77-bob (1 of 1 needed); alice may use it until")))
	g.Eventually(func(g gomega.Gomega) *fixityv1.AccessApproval {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(approval), approval)).To(gomega.Succeed())
		return approval
	}, eventually, poll).Should(gomega.And(gomega.HaveField("Status.Approver", "bob"), gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.And(
		gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionTrue), gomega.HaveField("Reason", fixityv1.CountedReason))))))
	out, _ = alice.kubectl("exec", "-n", ns, "web", "--", "true")
	g.Expect(admittedPastFixity(out)).To(gomega.BeTrue(), "approved: %s", out)

	// Bob approves once; nobody rewrites who approved.
	out, err = bob.kubectlStdin(approvalManifest(ns, "inc-77-bob-again", "inc-77"), "apply", "-f", "-")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("bob approved AccessGrant %s/inc-77 already (AccessApproval inc-77-bob)", ns)))
	// Not even someone RBAC lets patch approvals.
	mallory := newUser(t, "mallory")
	allow(t, ctx, ns, "mallory", "approval-editor", rbacv1.PolicyRule{APIGroups: []string{fixityv1.GroupVersion.Group}, Resources: []string{"accessapprovals"}, Verbs: []string{"get", "patch"}})
	out, err = mallory.kubectl("annotate", "-n", ns, "accessapproval/inc-77-bob", "--overwrite", fixityv1.ApproverAnnotation+"=carol")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring("only the Fixity operator may change " + fixityv1.ApproverAnnotation + "; mallory tried to"))
	out, err = mallory.kubectl("patch", "-n", ns, "accessapproval/inc-77-bob", "--type=merge", "-p", `{"spec":{"grant":"other"}}`)
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring("spec is immutable"))
	// An approval of a grant that does not exist is refused.
	out, err = bob.kubectlStdin(approvalManifest(ns, "nothing", "no-such-grant"), "apply", "-f", "-")
	g.Expect(err).To(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring(fmt.Sprintf("spec.grant: AccessGrant %s/no-such-grant does not exist", ns)))
}

// impersonator lets user impersonate service account sa of ns.
func impersonator(t *testing.T, ctx context.Context, ns, user, sa string) {
	t.Helper()
	gomega.NewWithT(t).Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})).To(gomega.Succeed())
	allow(t, ctx, ns, user, "impersonate-"+sa, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, ResourceNames: []string{sa}, Verbs: []string{"impersonate"}})
}

// approver lets user approve grants in ns: it binds the sample developer role there, which
// may create AccessApprovals.
func approver(t *testing.T, ctx context.Context, ns, user string) {
	t.Helper()
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "approver"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "fixity-sample-developer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	gomega.NewWithT(t).Expect(k8s.Create(ctx, binding)).To(gomega.Succeed())
}
