package accessgrant

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/policy"
)

// Paths the webhooks are served on; they must match the markers below.
const (
	MutatePath   = "/mutate-fixity-dev-v1alpha1-accessgrant"
	ValidatePath = "/validate-fixity-dev-v1alpha1-accessgrant"
)

// +kubebuilder:webhook:path=/mutate-fixity-dev-v1alpha1-accessgrant,mutating=true,failurePolicy=fail,sideEffects=None,groups=fixity.dev,resources=accessgrants,verbs=create,versions=v1alpha1,name=maccessgrants.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`
// +kubebuilder:webhook:path=/validate-fixity-dev-v1alpha1-accessgrant,mutating=false,failurePolicy=fail,sideEffects=None,groups=fixity.dev,resources=accessgrants,verbs=create;update,versions=v1alpha1,name=accessgrants.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// Mutator stamps the requester on new grants and warns about grants that will not do anything.
type Mutator struct {
	Reader  client.Reader
	Matcher *policy.Matcher
}

// grantFields is the part of a grant the webhooks read. Decoding only these leaves every other
// field, valid or not, to the schema, whose messages name the field.
type grantFields struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Pods []string `json:"pods,omitempty"`
	} `json:"spec"`
}

func decode(raw []byte) (*grantFields, error) {
	g := &grantFields{}
	if err := json.Unmarshal(raw, g); err != nil {
		return nil, fmt.Errorf("decoding AccessGrant: %w", err)
	}
	return g, nil
}

// Handle records the creating user as the grant's requester. It patches that one annotation
// and nothing else.
func (h *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if resp, ok := createOnly(req); !ok {
		return resp
	}
	g, err := decode(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	// Whatever the object says, the requester is who sent the request.
	return admission.Patched("", stamp(g.Metadata.Annotations, map[string]string{
		fixityv1.RequesterAnnotation:       req.UserInfo.Username,
		fixityv1.RequesterGroupsAnnotation: groupsValue(req.UserInfo.Groups),
	})...).WithWarnings(h.warnings(ctx, req.Namespace, g.Spec.Pods)...)
}

// createOnly refuses anything but a CREATE: the mutating webhooks stamp who created an object, and
// are registered for CREATE alone; stamping an UPDATE would rewrite the record.
func createOnly(req admission.Request) (admission.Response, bool) {
	if req.Operation == admissionv1.Create {
		return admission.Response{}, true
	}
	return admission.Errored(http.StatusBadRequest, fmt.Errorf("%s %s/%s: this webhook records the creator and takes CREATE only, not %s; check its configuration",
		req.Kind.Kind, req.Namespace, req.Name, req.Operation)), false
}

// stamp returns the patch that sets annotations want on an object whose annotations are have.
func stamp(have, want map[string]string) []jsonpatch.Operation {
	if have == nil {
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", "/metadata/annotations", want)}
	}
	keys := slices.Sorted(maps.Keys(want))
	ops := make([]jsonpatch.Operation, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+strings.ReplaceAll(k, "/", "~1"), want[k]))
	}
	return ops
}

// groupsValue is the fixity.dev/requester-groups annotation for groups.
func groupsValue(groups []string) string {
	b, _ := json.Marshal(append([]string{}, slices.Sorted(slices.Values(groups))...)) // a []string always encodes
	return string(b)
}

// warnings tells the requester when a grant is pointless or names pods that do not exist; both
// are allowed (a named pod may appear after a restart).
func (h *Mutator) warnings(ctx context.Context, namespace string, pods []string) []string {
	var out []string
	policies, err := h.Matcher.ForNamespace(ctx, namespace)
	switch {
	case err != nil:
		out = append(out, fmt.Sprintf("could not check which policies apply to namespace %s: %v", namespace, err))
	case len(policies) == 0:
		out = append(out, fmt.Sprintf("no ImmutabilityPolicy applies to namespace %s, so this grant is not needed", namespace))
	}
	var missing []string
	for _, name := range pods {
		err := h.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.Pod{})
		if apierrors.IsNotFound(err) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		out = append(out, fmt.Sprintf("pod %s does not exist in namespace %s (yet); the grant covers it if it appears before the grant ends",
			strings.Join(missing, ", "), namespace))
	}
	return out
}

// Validator keeps the requester what the mutator recorded.
type Validator struct {
	// Operator is the operator's own username.
	Operator string
}

// Handle denies a create whose requester is not the sender (a later mutating webhook changed it)
// and any change to fixity.dev/* annotations by anyone but the operator.
func (h *Validator) Handle(_ context.Context, req admission.Request) admission.Response {
	g, err := decode(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	user := req.UserInfo.Username
	switch req.Operation {
	case admissionv1.Create:
		if got := g.Metadata.Annotations[grants.RequesterAnnotation]; got != user {
			return admission.Denied(fmt.Sprintf("AccessGrant %s/%s: annotation %s is %q but the grant is being created by %q; a grant is always made out to its creator",
				req.Namespace, req.Name, grants.RequesterAnnotation, got, user))
		}
		if got, want := g.Metadata.Annotations[fixityv1.RequesterGroupsAnnotation], groupsValue(req.UserInfo.Groups); got != want {
			return admission.Denied(fmt.Sprintf("AccessGrant %s/%s: annotation %s is %q but the grant is being created by a member of %s",
				req.Namespace, req.Name, fixityv1.RequesterGroupsAnnotation, got, want))
		}
	case admissionv1.Update:
		if user == h.Operator {
			return admission.Allowed("")
		}
		old, err := decode(req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if changed := lockdown.ChangedOwnedAnnotations(old.Metadata.Annotations, g.Metadata.Annotations); len(changed) > 0 {
			return admission.Denied(fmt.Sprintf("AccessGrant %s/%s: only the Fixity operator may change %s; %s tried to",
				req.Namespace, req.Name, strings.Join(changed, ", "), user))
		}
	}
	return admission.Allowed("")
}

// Register serves the AccessGrant and AccessApproval webhooks on mgr's webhook server.
func Register(mgr ctrl.Manager, m *policy.Matcher, f *grants.Finder, operator string) {
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, metrics.Webhook(MutatePath, &Mutator{Reader: mgr.GetClient(), Matcher: m}))
	srv.Register(ValidatePath, metrics.Webhook(ValidatePath, &Validator{Operator: operator}))
	gr := &GrantReader{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	srv.Register(ApprovalMutatePath, metrics.Webhook(ApprovalMutatePath, &ApprovalMutator{Grants: gr}))
	srv.Register(ApprovalValidatePath, metrics.Webhook(ApprovalValidatePath, &ApprovalValidator{Grants: gr, Finder: f, Client: mgr.GetClient(), Operator: operator}))
}
