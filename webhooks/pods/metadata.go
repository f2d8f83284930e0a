package pods

import (
	"context"
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/policy"
)

// MetadataPath is where Metadata is served; it must match the marker below.
const MetadataPath = "/validate-v1-pod-metadata"

// The status subresource keeps the labels and annotations it is sent, and a binding copies its
// own annotations onto the pod: both could otherwise remove fixity.dev/tainted, forge
// fixity.dev/verified or relabel a pod out of its policy past pods.fixity.dev. The
// matchConditions send the API server's request here only when labels or a fixity.dev/*
// annotation would change, so kubelet status updates and the scheduler's bindings never wait on
// the operator.
// +kubebuilder:webhook:path=/validate-v1-pod-metadata,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=pods/status;pods/binding,verbs=create;update,versions=v1,name=podmetadata.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]},"matchConditions":[{"name":"changes-guarded-metadata","expression":"request.subResource == 'binding' ? (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('fixity.dev/'))) : (has(object.metadata.labels) != has(oldObject.metadata.labels) || (has(object.metadata.labels) && object.metadata.labels != oldObject.metadata.labels) || (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('fixity.dev/') && (!has(oldObject.metadata.annotations) || !(k in oldObject.metadata.annotations) || oldObject.metadata.annotations[k] != object.metadata.annotations[k]))) || (has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, k.startsWith('fixity.dev/') && (!has(object.metadata.annotations) || !(k in object.metadata.annotations)))))"}]}`

// Metadata applies the pod webhook's guards (only the operator writes fixity.dev/* annotations;
// a pod is not relabelled out of its policies) to status updates, and the annotation guard to
// bindings.
type Metadata struct {
	Matcher     *policy.Matcher
	Annotations *lockdown.AnnotationGuard
	// Guards run on status updates with the pod before and after, as on pod updates.
	Guards []admit.Guard
}

// Handle answers one admission request for pods/status or pods/binding.
func (h *Metadata) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.SubResource == "binding" {
		var b metav1.PartialObjectMetadata
		if err := json.Unmarshal(req.Object.Raw, &b); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if msg := h.Annotations.Deny(req.UserInfo.Username, nil, b.Annotations); msg != "" {
			return admission.Denied(msg)
		}
		return admission.Allowed("")
	}
	r, _, resp := decode(ctx, h.Matcher, req)
	if r == nil {
		return resp
	}
	if msg := admit.RunGuards(ctx, h.Guards, r); msg != "" {
		return admission.Denied(msg)
	}
	return admission.Allowed("")
}
