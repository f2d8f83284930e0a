package podaccess

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/policy"
)

// Path the webhook is served on; it must match the marker below.
const (
	Path = "/validate-pod-access"
	Name = "podaccess.fixity.dev"
)

// sideEffects=NoneOnDryRun: admitted accesses are recorded on the grant and the pod.
// +kubebuilder:webhook:path=/validate-pod-access,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods/exec;pods/attach;pods/portforward,verbs=connect,versions=v1,name=podaccess.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Handler admits interactive access to pods.
type Handler struct {
	// Reader is the cache; APIReader is asked when the cache does not have the pod yet.
	Reader, APIReader client.Reader
	Matcher           *policy.Matcher
	Access            *lockdown.Access
}

var accessOf = map[string]fixityv1.AccessKind{
	"exec":        fixityv1.AccessExec,
	"attach":      fixityv1.AccessAttach,
	"portforward": fixityv1.AccessPortForward,
}

// Handle applies runtime.exec and runtime.portForward of the matching policies, letting through
// only the requester of an active AccessGrant that covers the pod.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	access, ok := accessOf[req.SubResource]
	if !ok {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unexpected subresource %q", req.SubResource))
	}
	pod, err := h.pod(ctx, req.Namespace, req.Name)
	switch {
	case apierrors.IsNotFound(err):
		// The API server answers "not found" itself; nothing to protect.
		return admission.Allowed("")
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, err)
	}
	policies, err := h.Matcher.ForPod(ctx, req.Namespace, pod.Labels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	vs := h.Access.Decide(ctx, policies, pod, req.UserInfo.Username, access, ptr.Deref(req.DryRun, false))
	ctrl.LoggerFrom(ctx).Info("Pod access", "pod", klog.KObj(pod), "access", access, "user", req.UserInfo.Username,
		"policies", len(policies), "allowed", !admit.Denies(vs))
	admit.Count(Name, req, false, vs)
	return admit.Response(vs)
}

// pod reads the pod from the cache, and from the API server when the cache has not seen it yet:
// a pod created a moment ago must not slip through as "not found".
func (h *Handler) pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := h.Reader.Get(ctx, key, pod)
	if apierrors.IsNotFound(err) {
		err = h.APIReader.Get(ctx, key, pod)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, name, err)
	}
	return pod, err
}

// Register serves the pod access webhook on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher, access *lockdown.Access) {
	h := &Handler{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Matcher: m, Access: access}
	mgr.GetWebhookServer().Register(Path, metrics.Webhook(Path, h))
	mgr.GetWebhookServer().Register(NodeProxyPath, metrics.Webhook(NodeProxyPath, &NodeProxy{h}))
}
