package builders

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Image is a digest-pinned image reference for tests that never pull it.
const Image = "registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// PodOption changes a Pod being built.
type PodOption func(*corev1.Pod)

// Pod returns a running, Ready pod ns/name with one container "web" running Image.
func Pod(ns, name string, opts ...PodOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: Image}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// NotReady makes the pod not Ready.
func NotReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

// Terminating gives the pod a deletion timestamp.
func Terminating(p *corev1.Pod) {
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.Finalizers = []string{"test.fixity.dev/keep"}
}

// OwnedBy makes owner the pod's controller.
func OwnedBy(owner metav1.Object, kind string) PodOption {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: kind, Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true),
		}}
	}
}

// Annotated sets an annotation.
func Annotated(key, value string) PodOption {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[key] = value
	}
}

// ReplicaSet returns a ReplicaSet ns/name that wants replicas pods and reports ready of them Ready.
func ReplicaSet(ns, name string, replicas, ready int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": "web"}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("rs-" + ns + "-" + name)},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: Image}}},
			},
		},
		Status: appsv1.ReplicaSetStatus{Replicas: replicas, ReadyReplicas: ready},
	}
}

// Policy returns an Enforce policy called name matching every namespace, as the schema defaults it.
func Policy(name string, edit ...func(*fixityv1.ImmutabilityPolicySpec)) *fixityv1.ImmutabilityPolicy {
	p := &fixityv1.ImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: fixityv1.ImmutabilityPolicySpec{
			Mode:   fixityv1.ModeEnforce,
			Images: fixityv1.ImageRules{Digest: fixityv1.DigestResolve},
			Drift:  fixityv1.DriftRules{Action: fixityv1.DriftReplace, JobPods: fixityv1.DriftReport, MaxDriftedPercent: ptr.To[int32](50)},
		},
	}
	for _, e := range edit {
		e(&p.Spec)
	}
	return p
}

// Node returns a Ready node called name with a full nodeInfo, as a kubelet registers it.
func Node(name string, edit ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{ProviderID: "kwok://" + name},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo: corev1.NodeSystemInfo{
				KernelVersion: "6.1.0-28-cloud-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)", KubeletVersion: "v1.37.2",
				ContainerRuntimeVersion: "containerd://2.4.2", MachineID: "m-" + name, SystemUUID: "s-" + name, BootID: "b-1",
			},
		},
	}
	for _, e := range edit {
		e(n)
	}
	return n
}

// NodePolicy returns an Enforce node policy called name matching every node, as the schema
// defaults it.
func NodePolicy(name string, edit ...func(*fixityv1.NodeImmutabilityPolicySpec)) *fixityv1.NodeImmutabilityPolicy {
	one := intstr.FromInt32(1)
	p := &fixityv1.NodeImmutabilityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1, UID: types.UID("uid-" + name)},
		Spec: fixityv1.NodeImmutabilityPolicySpec{
			Mode: fixityv1.ModeEnforce, Checks: fixityv1.DefaultNodeChecks, Action: fixityv1.NodeReplace,
			MaxUnavailable: &one, MaxDriftedPercent: ptr.To[int32](20),
			DrainTimeout: &metav1.Duration{Duration: 30 * time.Minute},
		},
	}
	for _, e := range edit {
		e(&p.Spec)
	}
	return p
}
