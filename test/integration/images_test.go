package integration

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/images"
	fixitymetrics "github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/test/registry"
)

// newKey returns a fresh cosign key pair.
func newKey(t *testing.T) *registry.Key {
	t.Helper()
	k, err := registry.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pushImage pushes a fresh image to repo:tag in the loopback registry and signs it with keys,
// as `cosign sign --key` would.
func pushImage(t *testing.T, repo, tag string, keys ...*registry.Key) name.Digest {
	t.Helper()
	ctx := context.Background()
	d, err := reg.PushRandomImage(ctx, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := reg.Sign(ctx, d, k); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// keyAuthorityPEM is an authority list item for an inline public key.
func keyAuthorityPEM(name string, k *registry.Key) string {
	return "- name: " + name + "\n  key:\n    publicKey: |\n" + indentBy(strings.TrimSpace(string(k.PublicPEM)), 6)
}

// verifiedBy is an images section requiring signatures by k (authority "release").
func verifiedBy(k *registry.Key) string {
	return "images:\n  verify:\n    authorities:\n" + indentBy(keyAuthorityPEM("release", k), 4)
}

// imagePolicy creates a policy with spec (besides its match) for a namespace of its own, waits
// until the operator enforces it, and returns the namespace and the policy's name.
func imagePolicy(t *testing.T, ctx context.Context, spec string) (ns, policyName string) {
	t.Helper()
	label := uniqueName("img")
	ns = createNamespace(t, ctx, map[string]string{"fixity.dev/test": label})
	policyName = uniqueName("images")
	createPolicy(t, ctx, policyYAML(policyName, "match:\n  namespaceSelector: {matchLabels: {fixity.dev/test: "+label+"}}\n"+spec))
	gomega.NewWithT(t).Eventually(readyCondition(ctx, policyName), eventually, poll).Should(gomega.HaveField("Status", metav1.ConditionTrue))
	return ns, policyName
}

func podWithImage(ns, podName, image string) *corev1.Pod {
	p := pod(ns, podName)
	p.Spec.Containers[0].Image = image
	return p
}

// warningsClient is a client that collects the admission warnings kubectl would print.
func warningsClient(t *testing.T) (client.Client, func() []string) {
	t.Helper()
	var (
		mu       sync.Mutex
		warnings []string
	)
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = warningFunc(func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, msg)
	})
	c, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), warnings...)
	}
}

type warningFunc func(string)

func (f warningFunc) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	f(msg)
}

func TestSignedImagesAreAdmittedAndRecorded(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release, other := newKey(t), newKey(t)
	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Require\n  verify:\n    authorities:\n"+indentBy(keyAuthorityPEM("release", release), 4))

	signed := pushImage(t, "shop/web", "1.0", release)
	p := podWithImage(ns, "signed", signed.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, ok, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(ok).To(gomega.BeTrue(), "the pod carries its fixity.dev/verified record")
	g.Expect(rec).To(gomega.HaveKeyWithValue("web", admitted.Image{Image: signed.String(), Authorities: []string{pol + "/release"},
		Formats: map[string]string{pol + "/release": images.FormatLegacy}}))
	g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.SpecHashAnnotation, gomega.HavePrefix("sha256:")))

	unsigned := pushImage(t, "shop/web", "unsigned")
	err = k8s.Create(ctx, podWithImage(ns, "unsigned", unsigned.String()))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`admission webhook "pods.fixity.dev" denied the request`),
		gomega.ContainSubstring(fmt.Sprintf(`[policy %s] container "web": image %q is not signed by enough trusted authorities: 0 of the 1 required verified it (%s/release: no signatures found)`, pol, unsigned.String(), pol)),
	)))

	wrongKey := pushImage(t, "shop/web", "wrong-key", other)
	err = k8s.Create(ctx, podWithImage(ns, "wrong-key", wrongKey.String()))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring("0 of the 1 required verified it"),
		gomega.ContainSubstring(pol+"/release: no matching signature"),
	)))

	// Under Require a tag is denied with the digest to paste.
	err = k8s.Create(ctx, podWithImage(ns, "tag", reg.Host()+"/shop/web:1.0"))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`image %q is not pinned by digest; use %s (the digest that tag points at now)`, reg.Host()+"/shop/web:1.0", signed.String()))))
}

func TestThresholdCountsDistinctAuthorities(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	a, b, c := newKey(t), newKey(t), newKey(t)
	ns, pol := imagePolicy(t, ctx, "images:\n  verify:\n    threshold: 2\n    authorities:\n"+
		indentBy(keyAuthorityPEM("a", a), 4)+"\n"+indentBy(keyAuthorityPEM("b", b), 4)+"\n"+indentBy(keyAuthorityPEM("c", c), 4))

	twice := pushImage(t, "shop/api", "two", a, c)
	p := podWithImage(ns, "two", twice.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Authorities).To(gomega.Equal([]string{pol + "/a", pol + "/c"}))

	// The same key signing twice is still one authority.
	once := pushImage(t, "shop/api", "one", a, a)
	g.Expect(k8s.Create(ctx, podWithImage(ns, "one", once.String()))).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring("1 of the 2 required verified it"),
		gomega.ContainSubstring(pol+"/b: no matching signature"),
		gomega.ContainSubstring(pol+"/c: no matching signature"),
	)))
}

func TestResolveRewritesTagsOnPodsOnly(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, _ := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")
	d := pushImage(t, "shop/cart", "2.1")
	tagged := reg.Host() + "/shop/cart:2.1"

	p := podWithImage(ns, "cart", tagged)
	p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: tagged}}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(d.String()))
	g.Expect(p.Spec.InitContainers[0].Image).To(gomega.Equal(d.String()))
	g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.OriginalImageAnnotationPrefix+"web", tagged))
	g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.OriginalImageAnnotationPrefix+"setup", tagged))

	// Workloads are validated, never mutated: what GitOps applied is what is stored.
	dep := deployment(ns, "cart")
	dep.Spec.Template.Spec.Containers[0].Image = tagged
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed())
	got := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dep), got)).To(gomega.Succeed())
	g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(gomega.Equal(tagged))
	g.Expect(got.Annotations).NotTo(gomega.HaveKey(gomega.HavePrefix(fixityv1.Prefix)))

	// A tag that points nowhere is a denial naming the image and the cause.
	err := k8s.Create(ctx, podWithImage(ns, "missing", reg.Host()+"/shop/cart:nope"))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`admission webhook "mpods.fixity.dev" denied the request`),
		gomega.ContainSubstring(fmt.Sprintf(`image "%s/shop/cart:nope" is not pinned by digest and could not be resolved to one: not found in registry %s`, reg.Host(), reg.Host())),
	)))
}

// All pods of one owner run the digest its tag pointed at for the first of them, even when the
// tag moves mid-rollout; the pin is in the cluster, so a second webhook replica sees it too.
func TestResolvePinsOneDigestPerOwner(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, _ := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")
	first := pushImage(t, "shop/rollout", "stable")
	tagged := reg.Host() + "/shop/rollout:stable"

	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: tagged}}},
			},
		},
	}
	g.Expect(k8s.Create(ctx, rs)).To(gomega.Succeed())
	owned := func(podName string) *corev1.Pod {
		p := podWithImage(ns, podName, tagged)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}
		return p
	}
	p1 := owned("web-1-a")
	g.Expect(k8s.Create(ctx, p1)).To(gomega.Succeed())
	g.Expect(p1.Spec.Containers[0].Image).To(gomega.Equal(first.String()))

	moved := pushImage(t, "shop/rollout", "stable")
	g.Expect(moved).NotTo(gomega.Equal(first))
	p2 := owned("web-1-b")
	g.Expect(k8s.Create(ctx, p2)).To(gomega.Succeed())
	g.Expect(p2.Spec.Containers[0].Image).To(gomega.Equal(first.String()), "the second pod of the owner keeps the first pod's digest")

	// The pin is recorded where every replica reads it, and goes away with its owner.
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fixity-pins-" + string(rs.UID)}, cm)).To(gomega.Succeed())
	g.Expect(cm.Data).To(gomega.ContainElement(first.DigestStr()))
	g.Expect(cm.OwnerReferences).To(gomega.ConsistOf(gomega.HaveField("UID", rs.UID)))

	// A bare pod resolves the tag as it is now.
	bare := podWithImage(ns, "bare", tagged)
	g.Expect(k8s.Create(ctx, bare)).To(gomega.Succeed())
	g.Expect(bare.Spec.Containers[0].Image).To(gomega.Equal(moved.String()))

	// The record sits in the workload's namespace: a value written there that is not a digest is
	// refused with a clear denial, never followed to an unpinned image.
	rs2 := rs.DeepCopy()
	rs2.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "web-2"}
	g.Expect(k8s.Create(ctx, rs2)).To(gomega.Succeed())
	p3 := owned("web-2-a")
	p3.OwnerReferences[0].Name, p3.OwnerReferences[0].UID = rs2.Name, rs2.UID
	pinName := "fixity-pins-" + string(rs2.UID)
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pinName},
		Data:       map[string]string{images.PinKey(p3, "web", tagged): "latest"},
	})).To(gomega.Succeed())
	err := k8s.Create(ctx, p3)
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(fmt.Sprintf(
		`the pinned digest recorded in ConfigMap %s/%s is not a sha256 digest ("latest")`, ns, pinName))))
}

func TestAllowedRegistries(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Ignore\n  allowedRegistries: [\""+reg.Host()+"/shop\"]\n")
	d := pushImage(t, "shop/web", "allowed")
	g.Expect(k8s.Create(ctx, podWithImage(ns, "ok", d.String()))).To(gomega.Succeed())

	for _, image := range []string{
		"registry.example/shop/web:1.0",
		reg.Host() + "/shopping/web@" + d.DigestStr(), // a prefix ends at a path boundary
		"nginx:1.27",
	} {
		err := k8s.Create(ctx, podWithImage(ns, uniqueName("elsewhere"), image))
		g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
			fmt.Sprintf(`[policy %s] container "web": image %q is not from an allowed registry; allowed: %s/shop`, pol, image, reg.Host()))), image)
	}
	err := k8s.Create(ctx, podWithImage(ns, "malformed", "Shop/Web:::1"))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`image "Shop/Web:::1" is not a valid image reference`)))
}

// In Audit mode nothing is denied or rewritten; each violation comes back as a warning.
func TestAuditWarnsAndChangesNothing(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, "mode: Audit\nimages:\n  digest: Resolve\n  verify:\n    authorities:\n"+indentBy(keyAuthorityPEM("release", release), 4))
	pushImage(t, "shop/audit", "1.0")
	tagged := reg.Host() + "/shop/audit:1.0"

	c, warnings := warningsClient(t)
	p := podWithImage(ns, "audited", tagged)
	g.Expect(c.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(tagged), "Audit rewrites nothing")
	g.Expect(warnings()).To(gomega.ContainElements(
		gomega.HavePrefix(fmt.Sprintf(`audit: [policy %s] container "web": image %q is not pinned by digest; in Enforce mode it would run as %s/shop/audit@sha256:`, pol, tagged, reg.Host())),
		gomega.ContainSubstring("is not signed by enough trusted authorities: 0 of the 1 required"),
	))

	// Each violation is counted, by policy, rule and mode.
	g.Expect(violationsCounted(g, pol, "images.digest", "Audit")).To(gomega.Equal(1.0))
	g.Expect(violationsCounted(g, pol, "images.verify", "Audit")).To(gomega.Equal(1.0))

	dep := deployment(ns, "audited")
	dep.Spec.Template.Spec.Containers[0].Image = tagged
	g.Expect(c.Create(ctx, dep)).To(gomega.Succeed())
	g.Expect(warnings()).To(gomega.ContainElement(gomega.And(gomega.HavePrefix("audit: "), gomega.ContainSubstring("not signed by enough trusted authorities"))))
	g.Expect(violationsCounted(g, pol, "images.verify", "Audit")).To(gomega.Equal(2.0), "the Deployment's template too")
}

// violationsCounted reads fixity_admission_violations_total for policy, rule and mode from the
// registry the operator's /metrics endpoint serves.
func violationsCounted(g gomega.Gomega, policy, rule, mode string) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var sum float64 // over the webhooks that decided
	for _, f := range families {
		if f.GetName() != fixitymetrics.AdmissionViolationsName {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["policy"] == policy && labels["rule"] == rule && labels["mode"] == mode {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// A Deployment that would create pods Fixity denies is itself denied at apply time, with the
// same message, for regular and init containers.
func TestWorkloadsAreRejectedAtApply(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, verifiedBy(release))
	signed := pushImage(t, "shop/app", "signed", release)
	unsigned := pushImage(t, "shop/app", "unsigned")

	dep := deployment(ns, "app")
	dep.Spec.Template.Spec.Containers[0].Image = signed.String()
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed())

	bad := deployment(ns, "bad")
	bad.Spec.Template.Spec.Containers[0].Image = signed.String()
	bad.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: unsigned.String()}}
	err := k8s.Create(ctx, bad)
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(`admission webhook "workloads.fixity.dev" denied the request`),
		gomega.ContainSubstring(fmt.Sprintf(`[policy %s] container "migrate": image %q is not signed by enough trusted authorities`, pol, unsigned.String())),
	)))

	// A tag in a template under Resolve is fine (pods get the digest), but it must verify.
	tagged := deployment(ns, "tagged")
	tagged.Spec.Template.Spec.Containers[0].Image = reg.Host() + "/shop/app:unsigned"
	g.Expect(k8s.Create(ctx, tagged)).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf("image %q is not signed by enough trusted authorities", unsigned.String()))))
}

// kubectl debug adds an ephemeral container: its image is checked like any other.
func TestEphemeralContainersAreVerified(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, "runtime: {ephemeralContainers: Allow}\nimages:\n  verify:\n    authorities:\n"+indentBy(keyAuthorityPEM("release", release), 4))
	signed := pushImage(t, "shop/dbg", "signed", release)
	unsigned := pushImage(t, "shop/dbg", "unsigned")
	p := podWithImage(ns, "web", signed.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())

	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: unsigned.String()}}}
	err := k8s.SubResource("ephemeralcontainers").Update(ctx, p)
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`[policy %s] container "dbg": image %q is not signed by enough trusted authorities`, pol, unsigned.String()))))

	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(gomega.Succeed())
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: signed.String()}}}
	g.Expect(k8s.SubResource("ephemeralcontainers").Update(ctx, p)).To(gomega.Succeed())
}

// With the registry down, a digest verified before is still admitted from the verdict cache; a
// new one is denied with the cause, never allowed.
func TestRegistryDown(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, verifiedBy(release))
	known := pushImage(t, "shop/down", "known", release)
	unknown := pushImage(t, "shop/down", "unknown", release)
	g.Expect(k8s.Create(ctx, podWithImage(ns, "before", known.String()))).To(gomega.Succeed())

	g.Expect(reg.Stop()).To(gomega.Succeed())
	t.Cleanup(func() { _ = reg.Restart() })
	g.Expect(k8s.Create(ctx, podWithImage(ns, "cached", known.String()))).To(gomega.Succeed())
	err := k8s.Create(ctx, podWithImage(ns, "new", unknown.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`[policy %s] container "web": signatures of image %q could not be checked: fetching signatures: registry %s cannot be reached`, pol, unknown.String(), reg.Host()))))
	err = k8s.Create(ctx, podWithImage(ns, "tag", reg.Host()+"/shop/down:known"))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(fmt.Sprintf("registry %s cannot be reached", reg.Host()))))

	g.Expect(reg.Restart()).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, podWithImage(ns, "after", unknown.String()))).To(gomega.Succeed())
}

// A registry that accepts connections and never answers costs the user a clear denial inside
// the webhook's timeout, not a hung kubectl.
func TestRegistryThatHangs(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Require\n")
	image := l.Addr().String() + "/shop/web:1.0"
	err = k8s.Create(ctx, podWithImage(ns, "hang", image))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring(fmt.Sprintf(`[policy %s] container "web": image %q is not pinned by digest, and the digest it points at could not be looked up (registry %s did not answer in time`, pol, image, l.Addr().String())),
	)))
}

// A rollout of many pods of one new signed image costs one verification against the registry.
func TestManyPodsOneVerification(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, _ := imagePolicy(t, ctx, verifiedBy(release))
	d := pushImage(t, "shop/scale", "1.0", release)

	reg.ResetCounters()
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() { errs[i] = k8s.Create(ctx, podWithImage(ns, fmt.Sprintf("web-%d", i), d.String())) })
	}
	wg.Wait()
	for _, err := range errs {
		g.Expect(err).NotTo(gomega.HaveOccurred())
	}
	// One signature manifest; the signature's payload layer and the (empty) referrers list of
	// the bundle format are the only other requests.
	g.Expect(reg.ManifestRequests()).To(gomega.Equal(int64(1)))
	g.Expect(reg.Requests()).To(gomega.BeNumerically("<=", 5), "requests: the signature manifest, its payload, the referrers list, maybe a /v2/ ping per format")
}

// Many pods created at once by one tag under Resolve (a rollout by tag) share one lookup of the
// tag: the registry is slow here, so that their admissions surely overlap.
func TestManyPodsOneTagLookup(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, _ := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")
	d := pushImage(t, "shop/burst", "1.0")
	tagged := reg.Host() + "/shop/burst:1.0"

	reg.SetManifestDelay(2 * time.Second)
	t.Cleanup(func() { reg.SetManifestDelay(0) })
	reg.ResetCounters()
	pods := make([]*corev1.Pod, 20)
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		pods[i] = podWithImage(ns, fmt.Sprintf("burst-%d", i), tagged)
		wg.Go(func() { errs[i] = k8s.Create(ctx, pods[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(pods[i].Spec.Containers[0].Image).To(gomega.Equal(d.String()))
	}
	g.Expect(reg.ManifestRequests()).To(gomega.Equal(int64(1)), "one lookup of the tag for all the pods")
}

// A key the policy cannot use is reported on the policy and fails closed at admission.
func TestUnusableKey(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	bogus := "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAbm90IGEgc2lnbmluZyBrZXkgYXQgYWxsLCBqdXN0IHgyNTUxOQ==\n-----END PUBLIC KEY-----"
	label := uniqueName("img")
	ns := createNamespace(t, ctx, map[string]string{"fixity.dev/test": label})
	pol := uniqueName("badkey")
	createPolicy(t, ctx, policyYAML(pol, "match:\n  namespaceSelector: {matchLabels: {fixity.dev/test: "+label+"}}\n"+
		"images:\n  verify:\n    authorities:\n    - name: x25519\n      key:\n        publicKey: |\n"+indentBy(bogus, 10)))
	g.Eventually(readyCondition(ctx, pol), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionFalse),
		gomega.HaveField("Reason", fixityv1.InvalidSpecReason),
		gomega.HaveField("Message", gomega.ContainSubstring("spec.images.verify.authorities[0].key.publicKey: not a usable public key")),
	))
	d := pushImage(t, "shop/web", "badkey")
	err := k8s.Create(ctx, podWithImage(ns, "web", d.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf("[policy %s] images cannot be verified: policy %s: spec.images.verify.authorities[0] (x25519): key: not a usable public key", pol, pol))))
}
