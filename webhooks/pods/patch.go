package pods

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/admitted"
)

// before is what the mutators may change, as it was before they ran: the annotations and every
// image reference (admitted.Mutator's contract). The patch is built from it directly: diffing two
// encoded pods (PatchResponseFromRaw), or even deep-copying and comparing them, cost more than
// all of Fixity's own work on an admission with a cached verdict.
type before struct {
	annotations map[string]string
	images      []string
}

func snapshot(pod *corev1.Pod) before {
	b := before{annotations: maps.Clone(pod.Annotations)}
	for _, im := range admitted.PodImages(pod) {
		b.images = append(b.images, *im.Image)
	}
	return b
}

// patchFor is the JSON patch from the pod as it was before the mutators to pod. A mutator that
// added or removed an image broke its contract: the pod is refused rather than patched wrong.
func patchFor(b before, pod *corev1.Pod) admission.Response {
	ims := admitted.PodImages(pod)
	if len(ims) != len(b.images) {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("a mutation changed the pod's images from %d to %d", len(b.images), len(ims)))
	}
	var ops []jsonpatch.Operation
	for i, im := range ims {
		if *im.Image != b.images[i] {
			ops = append(ops, jsonpatch.NewOperation("replace", im.Path, *im.Image))
		}
	}
	ops = append(ops, annotationOps(b.annotations, pod.Annotations)...)
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", ops...)
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
