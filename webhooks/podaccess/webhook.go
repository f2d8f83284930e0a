package podaccess

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/policy"
)

// Path the webhook is served on; it must match the marker below.
const Path = "/validate-pod-access"

// sideEffects=NoneOnDryRun: admitted accesses will be recorded on the grant and the pod.
// The namespaceSelector keeps the control plane and the operator itself out of reach of
// failurePolicy=fail: they keep working while the operator is down (see internal/policy).
// +kubebuilder:webhook:path=/validate-pod-access,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods/exec;pods/attach;pods/portforward,verbs=connect,versions=v1,name=podaccess.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Handler admits interactive access to pods.
type Handler struct {
	Reader  client.Reader
	Matcher *policy.Matcher
}

// Handle finds the policies that apply to the target pod. The exec/attach/port-forward rules
// and AccessGrant checks come with the runtime lockdown issue.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	err := h.Reader.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		// The API server answers "not found" itself; nothing to protect.
		return admission.Allowed("")
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading pod %s/%s: %w", req.Namespace, req.Name, err))
	}
	policies, err := h.Matcher.ForPod(ctx, req.Namespace, pod.Labels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Admitting pod access", "pod", klog.KObj(pod), "subresource", req.SubResource, "user", req.UserInfo.Username, "policies", len(policies))
	return admission.Allowed("")
}

// Register serves the pod access webhook on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher) {
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: &Handler{Reader: mgr.GetClient(), Matcher: m}})
}
