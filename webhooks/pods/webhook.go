package pods

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/policy"
)

// Paths the webhooks are served on; they must match the markers below.
const (
	MutatePath   = "/mutate-v1-pod"
	ValidatePath = "/validate-v1-pod"
)

// The namespaceSelector keeps the control plane and the operator itself out of reach of
// failurePolicy=fail: they keep working while the operator is down (see internal/policy).
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=fail,sideEffects=None,groups="",resources=pods,verbs=create,versions=v1,name=mpods.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`
// +kubebuilder:webhook:path=/validate-v1-pod,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=pods;pods/ephemeralcontainers,verbs=create;update,versions=v1,name=pods.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// Handler admits Pods against the matching policies.
type Handler struct {
	Matcher *policy.Matcher
	Decoder admission.Decoder
	// Mutating selects the mutating (digest resolution) or the validating behaviour.
	Mutating bool
}

// Handle decodes the pod and finds the policies that apply. The image rules (issue 3) and the
// runtime rules (issue 4) are evaluated here; until then a matched pod is admitted unchanged.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	log := ctrl.LoggerFrom(ctx)
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	// On CREATE the namespace may be missing from the object; the request always carries it.
	policies, err := h.Matcher.ForPod(ctx, req.Namespace, pod.Labels)
	if err != nil {
		// Fail closed: a pod is never admitted because its policies could not be read.
		return admission.Errored(http.StatusInternalServerError, err)
	}
	log.V(1).Info("Admitting pod", "pod", klog.KRef(req.Namespace, req.Name), "operation", req.Operation, "policies", len(policies), "mutating", h.Mutating)
	return admission.Allowed("")
}

// Register serves both pod webhooks on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher) {
	dec := admission.NewDecoder(mgr.GetScheme())
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, &webhook.Admission{Handler: &Handler{Matcher: m, Decoder: dec, Mutating: true}})
	srv.Register(ValidatePath, &webhook.Admission{Handler: &Handler{Matcher: m, Decoder: dec}})
}
