package podaccess

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
)

// NodeProxyPath and NodeProxyName are where and as what the nodes/proxy webhook is served; they
// must match the marker below.
const (
	NodeProxyPath = "/validate-node-proxy"
	NodeProxyName = "nodeproxy.fixity.dev"
)

// The kubelet's read-only endpoints never reach the operator (matchConditions), so logs, stats
// and metrics never wait on it; every other nodes/proxy path does, and the handler decides the
// ones that reach into a pod. Listing what is safe rather than what is not means a path spelt
// in an unexpected way is looked at rather than let through.
// +kubebuilder:webhook:path=/validate-node-proxy,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=nodes/proxy,verbs=connect,versions=v1,name=nodeproxy.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]},"matchConditions":[{"name":"reaches-into-a-pod","expression":"!has(object.path) || !['/stats/', '/metrics', '/healthz', '/containerLogs/', '/logs/', '/pods', '/spec/', '/configz'].exists(p, object.path.startsWith(p)) || object.path.contains('..') || object.path.contains('%')"}]}`

// nodeAccessOf maps the kubelet's endpoints that reach into a pod (lowercased) to the access
// they amount to: exec, run and checkpoint (a dump of the pod's memory) are exec.
var nodeAccessOf = map[string]fixityv1.AccessKind{
	"exec":        fixityv1.AccessExec,
	"run":         fixityv1.AccessExec,
	"checkpoint":  fixityv1.AccessExec,
	"attach":      fixityv1.AccessAttach,
	"portforward": fixityv1.AccessPortForward,
}

// NodeProxy decides CONNECT nodes/proxy: a kubelet path that reaches into a pod is decided
// exactly as that access through pods/exec, pods/attach or pods/portforward would be (policy,
// AccessGrant, audit record, taint); other paths pass.
type NodeProxy struct{ *Handler }

// Handle answers one nodes/proxy admission request.
func (h *NodeProxy) Handle(ctx context.Context, req admission.Request) admission.Response {
	var opts struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(req.Object.Raw, &opts); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding NodeProxyOptions: %w", err))
	}
	access, namespace, podName, err := KubeletTarget(opts.Path)
	if err != nil {
		return admission.Denied(fmt.Sprintf("nodes/proxy %s of node %s: %v", opts.Path, req.Name, err))
	}
	if access == "" {
		return admission.Allowed("")
	}
	pod, err := h.pod(ctx, namespace, podName)
	switch {
	case apierrors.IsNotFound(err):
		return admission.Allowed("") // the kubelet has no such pod either
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, err)
	}
	policies, err := h.Matcher.ForPod(ctx, namespace, pod.Labels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	vs := h.Access.Decide(ctx, policies, pod, req.UserInfo.Username, access, ptr.Deref(req.DryRun, false))
	ctrl.LoggerFrom(ctx).Info("Pod access through the kubelet", "node", req.Name, "pod", klog.KObj(pod), "access", access,
		"user", req.UserInfo.Username, "policies", len(policies), "allowed", !admit.Denies(vs))
	admit.Count(NodeProxyName, req, false, vs)
	return admit.Response(vs)
}

// KubeletTarget reads a kubelet path: the access it amounts to and the pod it names, or no
// access for a path that does not reach into a pod. The path is unescaped and cleaned as the
// kubelet's router would see it; an interactive path that names no pod is an error.
func KubeletTarget(p string) (fixityv1.AccessKind, string, string, error) {
	unescaped, err := url.PathUnescape(p)
	if err != nil {
		return "", "", "", fmt.Errorf("the path does not unescape: %w", err)
	}
	clean := path.Clean("/" + unescaped)
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	access, ok := nodeAccessOf[strings.ToLower(parts[0])]
	if !ok {
		return "", "", "", nil
	}
	// /exec/{namespace}/{pod}[/{uid}]/{container}, /portForward/{namespace}/{pod}[/{uid}]
	if len(parts) < 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("%s names no pod", parts[0])
	}
	return access, parts[1], parts[2], nil
}
