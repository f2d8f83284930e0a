package pods

import (
	"context"
	"encoding/json"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/lockdown"
)

// AnnotationsPath is where OwnedAnnotations is served; it must match the marker below.
const AnnotationsPath = "/validate-v1-pod-annotations"

// The status subresource keeps the labels and annotations it is sent, and a binding copies its
// own annotations onto the pod: both could otherwise remove fixity.dev/tainted or forge
// fixity.dev/verified past pods.fixity.dev. The matchConditions send the API server's request
// here only when a fixity.dev/* annotation would change, so kubelet status updates and the
// scheduler's bindings never wait on the operator.
// +kubebuilder:webhook:path=/validate-v1-pod-annotations,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=pods/status;pods/binding,verbs=create;update,versions=v1,name=podannotations.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]},"matchConditions":[{"name":"changes-fixity-annotations","expression":"request.subResource == 'binding' ? (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('fixity.dev/'))) : ((has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('fixity.dev/') && (!has(oldObject.metadata.annotations) || !(k in oldObject.metadata.annotations) || oldObject.metadata.annotations[k] != object.metadata.annotations[k]))) || (has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, k.startsWith('fixity.dev/') && (!has(object.metadata.annotations) || !(k in object.metadata.annotations)))))"}]}`

// OwnedAnnotations denies a status update or a binding, by anyone but the operator, that adds,
// changes or removes a fixity.dev/* annotation of a pod.
type OwnedAnnotations struct {
	Guard *lockdown.AnnotationGuard
}

// Handle answers one admission request for pods/status or pods/binding.
func (h *OwnedAnnotations) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.UserInfo.Username == h.Guard.Operator {
		return admission.Allowed("")
	}
	var updated, old metav1.PartialObjectMetadata
	if err := json.Unmarshal(req.Object.Raw, &updated); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if err := json.Unmarshal(req.OldObject.Raw, &old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	if msg := h.Guard.Deny(req.UserInfo.Username, old.Annotations, updated.Annotations); msg != "" {
		return admission.Denied(msg)
	}
	return admission.Allowed("")
}
