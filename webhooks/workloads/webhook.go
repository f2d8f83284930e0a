package workloads

import (
	"context"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/workload"
)

// Path the webhook is served on; it must match the marker below.
const Path = "/validate-workloads"

// The namespaceSelector keeps the control plane and the operator itself out of reach of
// failurePolicy=fail: they keep working while the operator is down (see internal/policy).
// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=fail,sideEffects=None,groups=apps;batch,resources=deployments;statefulsets;daemonsets;replicasets;jobs;cronjobs,verbs=create;update,versions=v1,name=workloads.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// Handler validates workload pod templates against the matching policies.
type Handler struct {
	Matcher *policy.Matcher
}

// Handle extracts the pod template and finds the policies that apply to the pods it would
// create. The rules themselves come with the image admission and runtime lockdown issues.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	gk := metav1.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	tpl, err := workload.PodTemplate(gk, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	policies, err := h.Matcher.ForPod(ctx, req.Namespace, tpl.Labels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Admitting workload", "kind", gk.String(), "workload", klog.KRef(req.Namespace, req.Name), "policies", len(policies))
	return admission.Allowed("")
}

// Register serves the workload webhook on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher) {
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: &Handler{Matcher: m}})
}
