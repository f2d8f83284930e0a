package pods

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The patch the mutating webhook answers with turns the pod the API server sent into exactly the
// mutated pod, for every change a mutator may make (annotations, image references); a mutation
// that adds or removes an image is an error, never a patch that loses it.
func TestPatchForAppliesToTheMutatedPod(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{"team": "shop", "fixity.dev/verified": "forged", "a~b/c": "x"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "r/init:1"}},
				Containers:     []corev1.Container{{Name: "web", Image: "r/web:1"}, {Name: "side", Image: "r/side:1"}},
				Volumes:        []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "r/models:1"}}}, {Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			},
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *corev1.Pod)
	}{
		{"nothing", func(*corev1.Pod) {}},
		{"annotations and images", func(p *corev1.Pod) {
			delete(p.Annotations, "fixity.dev/verified")
			p.Annotations["fixity.dev/spec-hash"] = "sha256:1"
			p.Annotations["a~b/c"] = "y"
			p.Spec.InitContainers[0].Image = "r/init@sha256:1"
			p.Spec.Containers[1].Image = "r/side@sha256:2"
			p.Spec.Volumes[0].Image.Reference = "r/models@sha256:3"
		}},
		{"annotations on a pod without any", func(p *corev1.Pod) { p.Annotations = map[string]string{"fixity.dev/verified": "{}"} }},
		{"all annotations removed", func(p *corev1.Pod) { p.Annotations = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := base()
			if tc.name == "annotations on a pod without any" {
				orig.Annotations = nil
			}
			raw, err := json.Marshal(orig)
			if err != nil {
				t.Fatal(err)
			}
			mutated := orig.DeepCopy()
			b := snapshot(mutated)
			tc.mutate(mutated)
			resp := patchFor(b, mutated)
			if !resp.Allowed {
				t.Fatalf("not allowed: %v", resp.Result)
			}
			ops, err := json.Marshal(resp.Patches)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := jsonpatch.DecodePatch(ops)
			if err != nil {
				t.Fatal(err)
			}
			applied, err := patch.Apply(raw)
			if err != nil {
				t.Fatalf("applying %s: %v", ops, err)
			}
			got := &corev1.Pod{}
			if err := json.Unmarshal(applied, got); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, mutated) {
				t.Fatalf("patch %s gives\n%+v\nwant\n%+v", ops, got, mutated)
			}
		})
	}
}

func TestPatchForRefusesAMutationThatChangesTheImages(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "r/web:1"}}}}
	b := snapshot(pod)
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side", Image: "r/side:1"})
	if resp := patchFor(b, pod); resp.Allowed || resp.Result == nil || resp.Result.Code != 500 {
		t.Fatalf("patchFor after adding a container = %+v, want an error", resp)
	}
}
