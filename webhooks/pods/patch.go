package pods

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// patchFor is the JSON patch from orig to mutated. The mutators change only annotations and
// image references, so those are patched directly; building the patch by diffing two encoded
// pods (PatchResponseFromRaw) decoded both documents again and cost more than all of Fixity's
// own work on a cached admission. Should a mutator ever change anything else, the pods are
// diffed whole, so no change is lost.
func patchFor(raw []byte, orig, mutated *corev1.Pod) admission.Response {
	if ops, ok := directPatch(orig, mutated); ok {
		if len(ops) == 0 {
			return admission.Allowed("")
		}
		return admission.Patched("", ops...)
	}
	b, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(500, err)
	}
	return admission.PatchResponseFromRaw(raw, b)
}

// directPatch returns the operations for the annotations and images that differ, and false when
// something else differs too.
func directPatch(orig, mutated *corev1.Pod) ([]jsonpatch.Operation, bool) {
	var ops []jsonpatch.Operation
	// Everything but annotations and images must be the same.
	rest := mutated.DeepCopy()
	rest.Annotations = orig.Annotations
	images := func(from, to []corev1.Container, path string) bool {
		if len(from) != len(to) {
			return false
		}
		for i := range to {
			if to[i].Image != from[i].Image {
				ops = append(ops, jsonpatch.NewOperation("replace", path+"/"+strconv.Itoa(i)+"/image", to[i].Image))
			}
		}
		return true
	}
	if !images(orig.Spec.InitContainers, rest.Spec.InitContainers, "/spec/initContainers") ||
		!images(orig.Spec.Containers, rest.Spec.Containers, "/spec/containers") {
		return nil, false
	}
	if len(orig.Spec.EphemeralContainers) != len(rest.Spec.EphemeralContainers) || len(orig.Spec.Volumes) != len(rest.Spec.Volumes) {
		return nil, false
	}
	for i := range rest.Spec.EphemeralContainers {
		if a, b := orig.Spec.EphemeralContainers[i].Image, rest.Spec.EphemeralContainers[i].Image; a != b {
			ops = append(ops, jsonpatch.NewOperation("replace", "/spec/ephemeralContainers/"+strconv.Itoa(i)+"/image", b))
		}
		rest.Spec.EphemeralContainers[i].Image = orig.Spec.EphemeralContainers[i].Image
	}
	for i := range rest.Spec.InitContainers {
		rest.Spec.InitContainers[i].Image = orig.Spec.InitContainers[i].Image
	}
	for i := range rest.Spec.Containers {
		rest.Spec.Containers[i].Image = orig.Spec.Containers[i].Image
	}
	for i := range rest.Spec.Volumes {
		a, b := orig.Spec.Volumes[i].Image, rest.Spec.Volumes[i].Image
		if a == nil || b == nil {
			continue
		}
		if a.Reference != b.Reference {
			ops = append(ops, jsonpatch.NewOperation("replace", "/spec/volumes/"+strconv.Itoa(i)+"/image/reference", b.Reference))
		}
		b.Reference = a.Reference
	}
	if !equality.Semantic.DeepEqual(rest, orig) {
		return nil, false
	}
	return append(ops, annotationOps(orig.Annotations, mutated.Annotations)...), true
}

// annotationOps patches annotations from to to, key by key (sorted, for stable patches).
func annotationOps(from, to map[string]string) []jsonpatch.Operation {
	if len(from) == 0 {
		if len(to) == 0 {
			return nil
		}
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", "/metadata/annotations", to)}
	}
	var ops []jsonpatch.Operation
	keys := make([]string, 0, len(from)+len(to))
	for k := range from {
		keys = append(keys, k)
	}
	for k := range to {
		if _, ok := from[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
		old, had := from[k]
		v, has := to[k]
		switch {
		case had && !has:
			ops = append(ops, jsonpatch.NewOperation("remove", path, nil))
		case !had && has:
			ops = append(ops, jsonpatch.NewOperation("add", path, v))
		case old != v:
			ops = append(ops, jsonpatch.NewOperation("replace", path, v))
		}
	}
	return ops
}
