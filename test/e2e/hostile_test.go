package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/registry"
)

// The hostile suite: one test per attempt to get into a pod, or to hide from Fixity, by a door
// other than the guarded one. The attempts also covered elsewhere: grant lending
// (TestAccessGrantLetsOnlyItsRequesterInAndIsAudited), approval by a name the requester can act
// as (TestAccessGrantWaitsForASecondPerson), relabelling out of a policy
// (TestPodCannotBeRelabelledOutOfItsPolicy), multi-arch index against platform digests
// (TestNoFalseDrift), forged annotations on create and through the status
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
	binding := allow(t, ctx, "", "mallory", "kubelet-proxy-"+ns, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}})

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
	g.Eventually(events(ctx, metav1.NamespaceDefault, binding.GetName()), eventually, poll).Should(gomega.ContainElement(
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

// A tag moved between the admission of two replicas of one Deployment does not give the second
// another image: the digest the first resolved to is pinned for the owner, so a scale-up after a
// push to the tag runs what was deployed.
func TestHostileTagMovedBetweenReplicas(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Digest = fixityv1.DigestResolve })
	repo := "hostile/" + ns
	first, err := reg.PushRandomImage(ctx, repo, "stable")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	pods := rollOut(t, ctx, ns, "web", 1, reg.Host()+"/"+repo+":stable")
	g.Expect(pods[0].Spec.Containers[0].Image).To(gomega.Equal(first.String()))

	moved, err := reg.PushRandomImage(ctx, repo, "stable")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(moved).NotTo(gomega.Equal(first))
	dep := deployment(ns, "web", 3)
	g.Expect(k8s.Patch(ctx, dep, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":3}}`)))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		pods := readyPods(ctx, ns, "web")(g)
		g.Expect(pods).To(gomega.HaveLen(3))
		for _, p := range pods {
			g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(first.String()), "pod %s", p.Name)
		}
	}, eventually, poll).Should(gomega.Succeed())
}

// An image volume mounts an image's content as surely as a container runs one: swapping a
// Deployment's image volume for an unsigned image is denied at apply time, naming the volume,
// while the signed one rolls out.
func TestHostileImageVolumeSwapped(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Verify = signedBy(key) })
	app, err := reg.PushRandomImage(ctx, "hostile/app", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	models, err := reg.PushRandomImage(ctx, "hostile/models", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	unsigned, err := reg.PushRandomImage(ctx, "hostile/models", "v2")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, app, key)).To(gomega.Succeed())
	g.Expect(reg.Sign(ctx, models, key)).To(gomega.Succeed())

	dep := deployment(ns, "web", 1)
	dep.Spec.Template.Spec.Containers[0].Image = app.String()
	dep.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: models.String()}}}}
	dep.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "models", MountPath: "/models"}}
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "web"), eventually, poll).Should(gomega.HaveLen(1))

	swap := fmt.Sprintf(`{"spec":{"template":{"spec":{"volumes":[{"name":"models","image":{"reference":%q}}]}}}}`, unsigned.String())
	err = k8s.Patch(ctx, dep, client.RawPatch(types.StrategicMergePatchType, []byte(swap)))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`admission webhook "workloads.fixity.dev" denied the request`),
		gomega.ContainSubstring(`volume "models": image "`+unsigned.String()+`"`),
		gomega.ContainSubstring("is not signed by enough trusted authorities"),
	)))
}

// No subresource that writes a pod strips or forges its fixity.dev/* records: each attempt is
// refused by Fixity (the pod itself, status), or the API server keeps the metadata it is sent
// out of the write (ephemeralcontainers, resize); either way the record is still the operator's.
func TestHostileRecordsSurviveEverySubresource(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	mallory := newUser(t, "mallory")
	ns := enforcedNamespace(t, ctx)
	pod := runningPod(t, ctx, ns, "web")
	record := pod.Annotations[fixityv1.VerifiedAnnotation]
	g.Expect(record).NotTo(gomega.BeEmpty())
	allow(t, ctx, ns, "mallory", "pod-writer", rbacv1.PolicyRule{APIGroups: []string{""},
		Resources: []string{"pods", "pods/status", "pods/ephemeralcontainers", "pods/resize"}, Verbs: []string{"get", "patch", "update"}})
	for _, sub := range []string{"", "status", "ephemeralcontainers", "resize"} {
		for _, patch := range []string{
			`{"metadata":{"annotations":{"` + fixityv1.VerifiedAnnotation + `":null}}}`,
			`{"metadata":{"annotations":{"` + fixityv1.VerifiedAnnotation + `":"{\"web\":{\"image\":\"forged\"}}"}}}`,
		} {
			args := []string{"patch", "-n", ns, "pod/web", "--type=merge", "-p", patch}
			if sub != "" {
				args = append(args, "--subresource="+sub)
			}
			out, err := mallory.kubectl(args...)
			if sub == "" || sub == "status" {
				g.Expect(err).To(gomega.HaveOccurred(), sub)
				g.Expect(out).To(gomega.ContainSubstring("only the Fixity operator may add, change or remove fixity.dev/* annotations; mallory changed "+fixityv1.VerifiedAnnotation), sub)
			}
			got := &corev1.Pod{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(gomega.Succeed())
			g.Expect(got.Annotations).To(gomega.HaveKeyWithValue(fixityv1.VerifiedAnnotation, record), "through %q: %s", sub, out)
		}
	}
}

// A signature covers the digest it was made for: an index signed as a whole verifies, and one of
// its platform manifests, pinned directly to dodge the index, is not taken as signed by it.
func TestHostileIndexSignatureDoesNotCoverAPlatformDigest(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ns := enforcedNamespace(t, ctx, func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Verify = signedBy(key) })
	index, platforms, err := reg.PushRandomIndex(ctx, "hostile/multiarch", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, index, key)).To(gomega.Succeed())
	g.Expect(platforms).NotTo(gomega.BeEmpty())

	signed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "index"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: index.String()}}}}
	g.Expect(k8s.Create(ctx, signed)).To(gomega.Succeed())
	for _, p := range platforms {
		dodge := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("platform")}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: p.String()}}}}
		g.Expect(k8s.Create(ctx, dodge)).To(gomega.MatchError(gomega.And(
			gomega.ContainSubstring(`admission webhook "pods.fixity.dev" denied the request`),
			gomega.ContainSubstring(p.String()),
			gomega.ContainSubstring("no signatures found"),
		)))
	}
}
