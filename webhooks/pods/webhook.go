package pods

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	jsonv2 "github.com/go-json-experiment/json"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/policy"
)

// Paths the webhooks are served on; they must match the markers below.
const (
	MutatePath   = "/mutate-v1-pod"
	ValidatePath = "/validate-v1-pod"
	MutateName   = "mpods.fixity.dev"
	ValidateName = "pods.fixity.dev"
)

// The namespaceSelector keeps the control plane and the operator itself out of reach of
// failurePolicy=fail: they keep working while the operator is down (see internal/policy).
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=mpods.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,reinvocationPolicy=IfNeeded,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`
// +kubebuilder:webhook:path=/validate-v1-pod,mutating=false,failurePolicy=fail,groups="",resources=pods;pods/ephemeralcontainers,verbs=create;update,versions=v1,name=pods.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,sideEffects=NoneOnDryRun,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// sideEffects=NoneOnDryRun on pods.fixity.dev: a `kubectl debug` let through by an AccessGrant is
// recorded on the grant. On mpods.fixity.dev: the digest a tag resolved to is pinned for the
// pod's owner in a ConfigMap (see internal/images.Pins); neither is written on a dry run.

// Validator enforces the checks of every matching policy on pods being created or updated,
// including updates of the ephemeralcontainers subresource (kubectl debug).
type Validator struct {
	Matcher *policy.Matcher
	Guards  []admit.Guard
	Checks  []admit.Check
	// Access decides kubectl debug (new ephemeral containers) by runtime.ephemeralContainers
	// and AccessGrants.
	Access *lockdown.Access
}

// Handle answers one admission request for a pod.
func (h *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx, cancel := admit.WithBudget(ctx)
	defer cancel()
	r, policies, resp := decode(ctx, h.Matcher, req)
	if r == nil {
		return resp
	}
	if msg := admit.RunGuards(ctx, h.Guards, r); msg != "" {
		return admission.Denied(msg)
	}
	vs := admit.RunChecks(ctx, h.Checks, policies, r)
	// Decide a debug session in every case, so the message lists everything to fix, but record
	// it only if nothing else refuses it: the audit trail holds accesses that happened.
	if req.SubResource == "ephemeralcontainers" && h.Access != nil && len(lockdown.AddedEphemeralContainers(r)) > 0 {
		dryRun := lockdown.DryRun(r) || admit.Denies(vs)
		vs = append(vs, h.Access.Decide(ctx, policies, r.Pod, req.UserInfo.Username, fixityv1.AccessDebug, dryRun)...)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Validated pod", "pod", klog.KRef(req.Namespace, req.Name), "operation", req.Operation,
		"subresource", req.SubResource, "policies", len(policies), "violations", len(vs))
	admit.Count(ValidateName, req, false, vs)
	return admit.Response(vs)
}

// Mutator applies the mutations of the matching policies to pods being created.
type Mutator struct {
	Matcher  *policy.Matcher
	Mutators []admit.Mutator
}

// Handle answers one admission request for a pod being created with a JSON patch.
func (h *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx, cancel := admit.WithBudget(ctx)
	defer cancel()
	r, policies, resp := decode(ctx, h.Matcher, req)
	if r == nil {
		return resp
	}
	b := snapshot(r.Pod)
	var vs []admit.Violation
	for _, m := range h.Mutators {
		vs = append(vs, m.MutatePod(ctx, policies, r)...)
	}
	// Fixity's own records among what the guard stripped mean this is a reinvocation.
	_, reinvoked := r.Stripped[fixityv1.VerifiedAnnotation]
	admit.Count(MutateName, req, reinvoked, vs)
	verdict := admit.Response(vs)
	if !verdict.Allowed {
		return verdict
	}
	return patchFor(b, r.Pod).WithWarnings(verdict.Warnings...)
}

// decodePod decodes a pod of an admission request as the API server encoded it (v1, JSON),
// case-sensitive like apimachinery's serializer, but without its first pass over the whole
// document to find the kind: the webhook only ever receives v1 Pods. Its status and
// managedFields are skipped, not decoded: no admission check reads them, and on an UPDATE they
// are most of the document. The decoder is encoding/json/v2 (the go-json-experiment module
// mirrors it until Go 1.27 makes it standard): it decodes a pod in half the time and
// allocations of encoding/json's, which was most of an admission's own cost with a cached
// verdict. It is stricter too: a duplicate key or invalid UTF-8 is an error, so the pod is
// refused rather than read differently from the API server.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errors.New("the admission request has no object")
	}
	var f podFields
	if err := jsonv2.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("decoding the pod: %w", err)
	}
	if f.Kind != "" && f.Kind != "Pod" {
		return nil, fmt.Errorf("decoding the pod: the object is a %s", f.Kind)
	}
	return &corev1.Pod{TypeMeta: f.TypeMeta, ObjectMeta: f.Metadata.ObjectMeta, Spec: f.Spec}, nil
}

// podFields is a pod without its status (an unknown field to the decoder, skipped).
type podFields struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        podMetadata    `json:"metadata"`
	Spec            corev1.PodSpec `json:"spec"`
}

// podMetadata is a pod's metadata without its managedFields: the outer field, being shallower,
// takes the key from ObjectMeta's.
type podMetadata struct {
	metav1.ObjectMeta `json:",inline"`
	ManagedFields     skipped `json:"managedFields"`
}

// skipped is a JSON value read past and dropped.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// decode reads the pod (and the old pod on UPDATE) and the policies that apply to it. A nil
// request means the returned response is final: the object did not decode, or the policies
// could not be read, in which case the pod is denied (fail closed).
func decode(ctx context.Context, m *policy.Matcher, req admission.Request) (*admit.Request, []fixityv1.ImmutabilityPolicy, admission.Response) {
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return nil, nil, admission.Errored(http.StatusBadRequest, err)
	}
	// Pods created by controllers may not carry their namespace yet; the request always does.
	pod.Namespace = req.Namespace
	r := &admit.Request{Pod: pod, Admission: req}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if r.OldPod, err = decodePod(req.OldObject.Raw); err != nil {
			return nil, nil, admission.Errored(http.StatusBadRequest, err)
		}
	}
	policies, err := m.ForPod(ctx, req.Namespace, pod.Labels)
	if err != nil {
		return nil, nil, admission.Errored(http.StatusInternalServerError, err)
	}
	return r, policies, admission.Response{}
}

// Register serves the pod webhooks on mgr's webhook server.
func Register(mgr ctrl.Manager, mut *Mutator, val *Validator, meta *Metadata) {
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, metrics.Webhook(MutatePath, mut))
	srv.Register(ValidatePath, metrics.Webhook(ValidatePath, val))
	srv.Register(MetadataPath, metrics.Webhook(MetadataPath, meta))
}
