package admitted

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func TestSpecHashCoversWhatRunsOnly(t *testing.T) {
	base := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "shop/web@sha256:1", Args: []string{"serve"}}}}}
	h0, err := SpecHash(base)
	if err != nil {
		t.Fatal(err)
	}
	same := base.DeepCopy()
	same.Labels = map[string]string{"moved": "yes"}
	same.Spec.NodeName = "node-1"
	if h, _ := SpecHash(same); h != h0 {
		t.Error("labels and scheduling changed the spec hash")
	}
	for name, edit := range map[string]func(*corev1.Pod){
		"image":    func(p *corev1.Pod) { p.Spec.Containers[0].Image = "shop/web@sha256:2" },
		"args":     func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"debug"} },
		"env":      func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}} },
		"init":     func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x"}} },
		"security": func(p *corev1.Pod) { p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64)} },
	} {
		p := base.DeepCopy()
		edit(p)
		if h, _ := SpecHash(p); h == h0 {
			t.Errorf("changing %s left the spec hash unchanged", name)
		}
	}
}

func TestVerifiedRoundTrip(t *testing.T) {
	v := Verified{"web": {Image: "shop/web@sha256:1", Authorities: []string{"prod/release"}}}
	enc, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{fixityv1.VerifiedAnnotation: enc}}}
	got, ok, err := ReadVerified(pod)
	if err != nil || !ok || got["web"].Authorities[0] != "prod/release" {
		t.Fatalf("ReadVerified = %v, %t, %v", got, ok, err)
	}
	if _, ok, _ := ReadVerified(&corev1.Pod{}); ok {
		t.Error("a pod without the annotation has a record")
	}
	pod.Annotations[fixityv1.VerifiedAnnotation] = "{broken"
	if _, _, err := ReadVerified(pod); err == nil {
		t.Error("a broken record parsed")
	}
}
