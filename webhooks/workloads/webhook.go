package workloads

import (
	"context"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/workload"
)

// Path the webhook is served on, and its name; both must match the marker below.
const (
	Path = "/validate-workloads"
	Name = "workloads.fixity.dev"
)

// +kubebuilder:webhook:path=/validate-workloads,mutating=false,failurePolicy=fail,sideEffects=None,groups=apps;batch,resources=deployments;statefulsets;daemonsets;replicasets;jobs;cronjobs,verbs=create;update,versions=v1,name=workloads.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// Handler validates workload pod templates against the matching policies.
type Handler struct {
	Matcher *policy.Matcher
	Checks  []admit.Check
}

// Handle checks the pod template as the pods it would create, with the same checks and messages
// as the pod webhook. An UPDATE that leaves the template alone (scaling, labels on the workload)
// is allowed: it creates no new kind of pod, and a policy added later must not freeze existing
// workloads.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx, cancel := admit.WithBudget(ctx)
	defer cancel()
	gk := metav1.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	tpl, err := workload.PodTemplate(gk, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old, err := workload.PodTemplate(gk, req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if equality.Semantic.DeepEqual(old, tpl) {
			return admission.Allowed("pod template unchanged")
		}
	}
	pod := &corev1.Pod{ObjectMeta: *tpl.ObjectMeta.DeepCopy(), Spec: tpl.Spec}
	pod.Namespace = req.Namespace
	policies, err := h.Matcher.ForPod(ctx, req.Namespace, pod.Labels)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	vs := admit.RunChecks(ctx, h.Checks, policies, &admit.Request{Pod: pod, Admission: req, Template: true})
	ctrl.LoggerFrom(ctx).V(1).Info("Validated workload", "kind", gk.String(), "workload", klog.KRef(req.Namespace, req.Name),
		"policies", len(policies), "violations", len(vs))
	admit.Count(Name, req, false, vs)
	return admit.Response(vs)
}

// Register serves the workload webhook on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher, checks []admit.Check) {
	mgr.GetWebhookServer().Register(Path, metrics.Webhook(Path, &Handler{Matcher: m, Checks: checks}))
}
