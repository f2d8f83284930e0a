package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/test/registry"
)

// replacementsProceeding matches a policy whose ReplacementsProceeding condition has status and
// reason.
func replacementsProceeding(status metav1.ConditionStatus, reason string) gomega.OmegaMatcher {
	return gomega.WithTransform(func(p *fixityv1.ImmutabilityPolicy) *metav1.Condition {
		return meta.FindStatusCondition(p.Status.Conditions, fixityv1.ReplacementsProceedingCondition)
	}, gomega.And(gomega.Not(gomega.BeNil()), gomega.HaveField("Status", status), gomega.HaveField("Reason", reason)))
}

// signingPolicy creates a policy that requires images signed by key in the namespaces labelled
// fixity.dev/enforce=name, with the circuit breaker out of the way.
func signingPolicy(t *testing.T, ctx context.Context, name string, key *registry.Key, edit ...func(*fixityv1.ImmutabilityPolicySpec)) {
	t.Helper()
	g := gomega.NewWithT(t)
	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Match:  fixityv1.PolicyMatch{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"fixity.dev/enforce": name}}},
			Images: fixityv1.ImageRules{Verify: signedBy(key)},
			Drift:  fixityv1.DriftRules{MaxDriftedPercent: ptr.To[int32](100)},
		},
	}
	for _, e := range edit {
		e(&p.Spec)
	}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	g.Eventually(policyOf(ctx, name), eventually, poll).Should(gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.And(
		gomega.HaveField("Type", fixityv1.ReadyCondition), gomega.HaveField("Status", metav1.ConditionTrue)))))
}

// labelIntoPolicy labels namespace ns so that the policy called name selects it.
func labelIntoPolicy(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	g := gomega.NewWithT(t)
	obj := &corev1.Namespace{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, obj)).To(gomega.Succeed())
	before := obj.DeepCopy()
	obj.Labels["fixity.dev/enforce"] = name
	g.Expect(k8s.Patch(ctx, obj, client.MergeFrom(before))).To(gomega.Succeed())
}

// legacyDeployment runs replicas pods of an unsigned image in a namespace no policy selects yet,
// and a policy that requires signatures, ready to select it.
func legacyDeployment(t *testing.T, ctx context.Context, replicas int32, edit ...func(*fixityv1.ImmutabilityPolicySpec)) (string, *registry.Key, []corev1.Pod) {
	t.Helper()
	g := gomega.NewWithT(t)
	key, err := registry.GenerateKey()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	name := uniqueName("legacy")
	g.Expect(env.CreateNamespace(ctx, name)).To(gomega.Succeed())
	pods := rollOut(t, ctx, name, "old", replicas, pushed(t, "legacy/old"))
	signingPolicy(t, ctx, name, key, edit...)
	g.Expect(policyOf(ctx, name)(g).Status.MatchedPods).To(gomega.Equal(int32(0)), "not selected yet")
	return name, key, pods
}

// The scenario a new user met in `make demo`: a namespace of unsigned pods labelled into a
// policy that requires signatures. Its pods are counted at once and found Unverified, but the
// ReplicaSet would replace them with pods admission denies, so they are kept and reported, with
// what to fix; once a signed image is rolled out nothing is left drifted.
func TestReplacementThatWouldBeDeniedKeepsThePods(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, key, pods := legacyDeployment(t, ctx, 4)

	labelIntoPolicy(t, ctx, ns, ns)
	g.Eventually(policyOf(ctx, ns), 10*time.Second, poll).Should(gomega.HaveField("Status.MatchedPods", int32(4)),
		"pods that came under the policy through a namespace label are counted within 10s")
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.DriftedPods", int32(4)),
		gomega.HaveField("Status.HeldPods", int32(4)),
		replacementsProceeding(metav1.ConditionFalse, fixityv1.ReplacementWouldBeDeniedReason),
		gomega.HaveField("Status.Conditions", gomega.ContainElement(gomega.HaveField("Message",
			gomega.ContainSubstring("sign the image or roll out a signed one")))),
	))
	g.Expect(events(ctx, ns, pods[0].Name)(g)).To(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventReplacementWouldBeDenied+": "),
		gomega.ContainSubstring("is not signed by enough trusted authorities"),
		gomega.ContainSubstring("ReplicaSet "+ns+"/old-"),
	)))
	g.Consistently(readyPods(ctx, ns, "old"), 3*time.Second, poll).Should(gomega.HaveLen(4), "nothing is evicted: 4/4 keep running")
	for _, p := range pods {
		g.Expect(gone(ctx, p)()).To(gomega.BeFalse())
	}

	// The fix the message asks for: roll out a signed image.
	d, err := reg.PushRandomImage(ctx, "legacy/new", "v1")
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(reg.Sign(ctx, d, key)).To(gomega.Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "old"}, dep)).To(gomega.Succeed())
	before := dep.DeepCopy()
	dep.Spec.Template.Spec.Containers[0].Image = d.String()
	g.Expect(k8s.Patch(ctx, dep, client.MergeFrom(before))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "old")(g)
		g.Expect(ready).To(gomega.HaveLen(4))
		for _, p := range ready {
			g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(d.String()))
		}
	}, eventually, poll).Should(gomega.Succeed())
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status.MatchedPods", int32(4)),
		gomega.HaveField("Status.DriftedPods", int32(0)),
		gomega.HaveField("Status.HeldPods", int32(0)),
		replacementsProceeding(metav1.ConditionTrue, fixityv1.ProceedingReason),
	))
}

// drift.evictUnadmittable: true evicts a pod whose replacement would be denied, still one at a
// time: the denied replacement never comes, so the owner is reported stuck and nothing more of
// it is evicted.
func TestEvictUnadmittableWaitsOnTheDeniedReplacement(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, _, pods := legacyDeployment(t, ctx, 3, func(s *fixityv1.ImmutabilityPolicySpec) { s.Drift.EvictUnadmittable = ptr.To(true) })

	labelIntoPolicy(t, ctx, ns, ns)
	evicted := func() int {
		n := 0
		for _, p := range pods {
			if gone(ctx, p)() {
				n++
			}
		}
		return n
	}
	g.Eventually(evicted, eventually, poll).Should(gomega.Equal(1))
	g.Eventually(policyOf(ctx, ns), replacementTimeout+eventually, poll).Should(gomega.And(
		replacementsProceeding(metav1.ConditionFalse, fixityv1.ReplacementStuckReason),
		gomega.HaveField("Status.HeldPods", int32(2)),
		gomega.HaveField("Status.ReplacedPods", int64(1)),
	))
	var kept corev1.Pod
	for _, p := range pods {
		if !gone(ctx, p)() {
			kept = p
		}
	}
	g.Expect(events(ctx, ns, kept.Name)(g)).To(gomega.ContainElement(gomega.And(
		gomega.HavePrefix(fixityv1.EventReplacementStuck+": "), gomega.ContainSubstring("nothing more of it is replaced until it recovers"))))
	g.Consistently(evicted, 3*time.Second, poll).Should(gomega.Equal(1), "the owner is stuck: nothing more is evicted")
	g.Expect(readyPods(ctx, ns, "old")(g)).To(gomega.HaveLen(2))
}

// A Deployment whose pods take a while to become Ready never drops below replicas − 1 Ready
// while all its drifted pods are replaced: the next goes only once the last one's replacement
// is Ready.
func TestSlowReplacementNeverDropsBelowReplicasMinusOne(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	dep := deployment(ns, "slow", 3)
	dep.Spec.Template.Spec.Containers[0].Image = pushed(t, "shop/slow")
	dep.Spec.Template.Annotations = map[string]string{"readyDelay": "3s"} // hack/kwok/stages.yaml
	g.Expect(k8s.Create(ctx, dep)).To(gomega.Succeed())
	var pods []corev1.Pod
	g.Eventually(func(g gomega.Gomega) {
		pods = readyPods(ctx, ns, "slow")(g)
		g.Expect(pods).To(gomega.HaveLen(3))
	}, eventually, poll).Should(gomega.Succeed())

	other := pushed(t, "shop/other")
	for i := range pods {
		g.Expect(runDigest(ctx, &pods[i], other)).To(gomega.Succeed())
	}
	least := 3
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "slow")(g)
		least = min(least, len(ready))
		for _, p := range pods {
			g.Expect(gone(ctx, p)()).To(gomega.BeTrue())
		}
		g.Expect(ready).To(gomega.HaveLen(3))
	}, 2*eventually, poll).Should(gomega.Succeed())
	g.Expect(least).To(gomega.BeNumerically(">=", 2), "never fewer than replicas − 1 Ready")
	g.Expect(policyOf(ctx, ns)(g).Status.ReplacedPods).To(gomega.Equal(int64(3)))
}

// A StatefulSet's drifted pods are replaced one at a time, from the highest ordinal down, as
// its own rolling update would.
func TestStatefulSetIsReplacedInOrderOneAtATime(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	labels := map[string]string{"app": "db"}
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: pushed(t, "shop/db")}}},
			},
		},
	}
	g.Expect(k8s.Create(ctx, ss)).To(gomega.Succeed())
	g.Eventually(readyPods(ctx, ns, "db"), eventually, poll).Should(gomega.HaveLen(3))
	uids := map[string]types.UID{}
	for _, p := range readyPods(ctx, ns, "db")(g) {
		uids[p.Name] = p.UID
	}

	// A budget holds every eviction until all three are drifted, so the order is the
	// operator's choice, not the order the test drifted them in.
	pdb := noDisruptions(t, ctx, ns, "db", 3)
	other := pushed(t, "shop/other")
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		p := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)).To(gomega.Succeed())
		g.Expect(runDigest(ctx, p, other)).To(gomega.Succeed())
	}
	g.Eventually(policyOf(ctx, ns), eventually, poll).Should(gomega.HaveField("Status.DriftedPods", int32(3)))
	g.Expect(k8s.Delete(ctx, pdb)).To(gomega.Succeed())

	var order []string
	most := 0 // pods not Ready (or missing) at once
	g.Eventually(func(g gomega.Gomega) {
		ready := readyPods(ctx, ns, "db")(g)
		most = max(most, 3-len(ready))
		var pods corev1.PodList
		g.Expect(k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels))).To(gomega.Succeed())
		for _, p := range pods.Items {
			if p.UID != uids[p.Name] && !slices.Contains(order, p.Name) {
				order = append(order, p.Name)
			}
		}
		g.Expect(order).To(gomega.HaveLen(3))
		g.Expect(ready).To(gomega.HaveLen(3))
	}, 2*eventually, poll).Should(gomega.Succeed())
	g.Expect(order).To(gomega.Equal([]string{"db-2", "db-1", "db-0"}))
	g.Expect(most).To(gomega.BeNumerically("<=", 1), "one at a time")
}

// Records written by an older Fixity (no record version) or under an older Kubernetes (whose
// defaults may hash the same spec differently) are stamped again from the current spec, never
// taken for drift.
func TestRecordsOfAnotherVersionAreStampedAgain(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := enforcedNamespace(t, ctx, maxDrifted(100))
	pods := rollOut(t, ctx, ns, "web", 3, pushed(t, "shop/web"))
	current := pods[2].Annotations[fixityv1.RecordVersionAnnotation]
	stamp, err := admitted.ParseStamp(current)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(stamp.Records).To(gomega.Equal(admitted.RecordsVersion))

	otherHash := "sha256:" + strings.Repeat("0", 64)
	for i, version := range []string{"", "v2;kubernetes=1.36"} {
		p := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pods[i]), p)).To(gomega.Succeed())
		before := p.DeepCopy()
		p.Annotations[fixityv1.SpecHashAnnotation] = otherHash
		if version == "" {
			delete(p.Annotations, fixityv1.RecordVersionAnnotation)
		} else {
			p.Annotations[fixityv1.RecordVersionAnnotation] = version
		}
		// The test's identity is the operator's (the same kubeconfig), which alone may write them.
		g.Expect(k8s.Patch(ctx, p, client.MergeFrom(before))).To(gomega.Succeed())
	}
	for _, pod := range pods[:2] {
		g.Eventually(func(g gomega.Gomega) {
			p := &corev1.Pod{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&pod), p)).To(gomega.Succeed())
			g.Expect(p.UID).To(gomega.Equal(pod.UID))
			g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.RecordVersionAnnotation, current))
			g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.SpecHashAnnotation, pods[2].Annotations[fixityv1.SpecHashAnnotation]))
		}, eventually, poll).Should(gomega.Succeed(), "stamped again from the current spec")
		g.Expect(events(ctx, ns, pod.Name)(g)).NotTo(gomega.ContainElement(gomega.HavePrefix(fixityv1.EventDriftDetected)))
	}
	g.Consistently(func() bool { return gone(ctx, pods[0])() || gone(ctx, pods[1])() }, 3*time.Second, poll).Should(gomega.BeFalse())
	g.Expect(policyOf(ctx, ns)(g).Status.DriftedPods).To(gomega.Equal(int32(0)))
}
