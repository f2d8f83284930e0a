package policies

import (
	"context"
	"encoding/json"
	"net/http"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/metrics"
)

// Path the webhook is served on; it must match the marker below. Its namespaceSelector is the
// same as every Fixity webhook's, for one install shape (the API server never applies it to a
// cluster-scoped object other than a Namespace).
const Path = "/validate-fixity-dev-v1alpha1-immutabilitypolicy"

// +kubebuilder:webhook:path=/validate-fixity-dev-v1alpha1-immutabilitypolicy,mutating=false,failurePolicy=ignore,sideEffects=None,groups=fixity.dev,resources=immutabilitypolicies,verbs=create;update,versions=v1alpha1,name=immutabilitypolicies.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=5,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// Handler rejects a policy whose attestation conditions do not compile.
type Handler struct{}

// Handle compiles the policy's conditions as admission will.
func (h *Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	p := &fixityv1.ImmutabilityPolicy{}
	if err := json.Unmarshal(req.Object.Raw, p); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if _, err := images.CompileAttestations(p); err != nil {
		return admission.Denied(err.Error())
	}
	return admission.Allowed("")
}

// Register serves the webhook on mgr's webhook server.
func Register(mgr ctrl.Manager) {
	mgr.GetWebhookServer().Register(Path, metrics.Webhook(Path, &Handler{}))
}
