package accessgrant

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/lockdown"
)

// Paths the AccessApproval webhooks are served on; they must match the markers below.
const (
	ApprovalMutatePath   = "/mutate-fixity-dev-v1alpha1-accessapproval"
	ApprovalValidatePath = "/validate-fixity-dev-v1alpha1-accessapproval"
)

// +kubebuilder:webhook:path=/mutate-fixity-dev-v1alpha1-accessapproval,mutating=true,failurePolicy=fail,sideEffects=None,groups=fixity.dev,resources=accessapprovals,verbs=create,versions=v1alpha1,name=maccessapprovals.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`
// +kubebuilder:webhook:path=/validate-fixity-dev-v1alpha1-accessapproval,mutating=false,failurePolicy=fail,sideEffects=None,groups=fixity.dev,resources=accessapprovals,verbs=create;update,versions=v1alpha1,name=accessapprovals.fixity.dev,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","fixity-system"]}]}}`

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// approvalFields is the part of an AccessApproval the webhooks read.
type approvalFields struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Grant string `json:"grant"`
	} `json:"spec"`
}

func decodeApproval(raw []byte) (*approvalFields, error) {
	a := &approvalFields{}
	if err := json.Unmarshal(raw, a); err != nil {
		return nil, fmt.Errorf("decoding AccessApproval: %w", err)
	}
	return a, nil
}

// ApprovalMutator records on a new approval who approves (the sender) and which grant (its UID:
// a grant deleted and created again under the same name is not approved by it).
type ApprovalMutator struct {
	Grants *GrantReader
}

// Handle stamps fixity.dev/approver and fixity.dev/grant-uid, whatever the object says.
func (h *ApprovalMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if resp, ok := createOnly(req); !ok {
		return resp
	}
	a, err := decodeApproval(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	uid := ""
	if g, err := h.Grants.Get(ctx, req.Namespace, a.Spec.Grant); err == nil {
		uid = string(g.UID)
	}
	// A grant that cannot be read gets no UID: the validating webhook says why.
	return admission.Patched("", stamp(a.Metadata.Annotations, map[string]string{
		fixityv1.ApproverAnnotation:         req.UserInfo.Username,
		fixityv1.ApprovedGrantUIDAnnotation: uid,
	})...)
}

// GrantReader reads grants from the cache, and from the API server when the cache has not seen
// one yet: an approval right after its grant is the usual case, not a race to lose.
type GrantReader struct {
	Reader, APIReader client.Reader
}

// Get returns the grant namespace/name.
func (r *GrantReader) Get(ctx context.Context, namespace, name string) (*fixityv1.AccessGrant, error) {
	g := &fixityv1.AccessGrant{}
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, g)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, g)
	}
	return g, err
}

// ApprovalValidator admits an approval only from a second person: not the requester, not a name
// the requester can act as, not someone who approved the grant already, and not for a grant that
// has ended.
type ApprovalValidator struct {
	Grants *GrantReader
	Finder *grants.Finder
	// Client creates the SubjectAccessReviews that ask whether the requester can act as the
	// approver, and lists the grant's approvals from the API server.
	Client client.Client
	// Operator is the operator's own username.
	Operator string
}

// Handle answers one admission request for an AccessApproval.
func (h *ApprovalValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	a, err := decodeApproval(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	user := req.UserInfo.Username
	if req.Operation == admissionv1.Update {
		if user == h.Operator {
			return admission.Allowed("")
		}
		old, err := decodeApproval(req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if changed := lockdown.ChangedOwnedAnnotations(old.Metadata.Annotations, a.Metadata.Annotations); len(changed) > 0 {
			return admission.Denied(fmt.Sprintf("AccessApproval %s/%s: only the Fixity operator may change %s; %s tried to",
				req.Namespace, req.Name, strings.Join(changed, ", "), user))
		}
		return admission.Allowed("")
	}
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	deny := func(format string, args ...any) admission.Response {
		return admission.Denied(fmt.Sprintf("AccessApproval %s/%s: ", req.Namespace, req.Name) + fmt.Sprintf(format, args...))
	}
	if got := a.Metadata.Annotations[fixityv1.ApproverAnnotation]; got != user {
		return deny("annotation %s is %q but the approval is being created by %q; an approval is always its creator's", fixityv1.ApproverAnnotation, got, user)
	}
	ref := req.Namespace + "/" + a.Spec.Grant
	g, err := h.Grants.Get(ctx, req.Namespace, a.Spec.Grant)
	switch {
	case apierrors.IsNotFound(err):
		return deny("spec.grant: AccessGrant %s does not exist", ref)
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading AccessGrant %s: %w", ref, err))
	case a.Metadata.Annotations[fixityv1.ApprovedGrantUIDAnnotation] != string(g.UID):
		return deny("annotation %s does not name AccessGrant %s (UID %s)", fixityv1.ApprovedGrantUIDAnnotation, ref, g.UID)
	}
	requester := grants.Requester(g)
	if requester == user {
		return deny("%s requested AccessGrant %s and cannot approve it; the approval must come from another user", user, ref)
	}
	if as, err := h.canActAs(ctx, g, user); err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("checking whether %s can act as %s: %w", requester, user, err))
	} else if as != "" {
		return deny("%s requested AccessGrant %s and can %s, so an approval by that name is no second person's; the approval must come from a user the requester cannot act as",
			requester, ref, as)
	}
	var list fixityv1.AccessApprovalList
	if err := h.Client.List(ctx, &list, client.InNamespace(req.Namespace)); err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("listing AccessApprovals in %s: %w", req.Namespace, err))
	}
	for _, c := range grants.CountApprovals(g, list.Items) {
		if c.User == user {
			return deny("%s approved AccessGrant %s already (AccessApproval %s); each user approves a grant once", user, ref, c.Approval)
		}
	}
	st, err := h.Finder.State(ctx, g, h.Finder.Now())
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	switch {
	case st.Phase == fixityv1.GrantExpired:
		return deny("AccessGrant %s ended at %s; approve a new grant instead", ref, st.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	case st.Required == 0:
		return admission.Allowed("").WithWarnings(fmt.Sprintf("no ImmutabilityPolicy of namespace %s asks for approvals (runtime.approvals), so AccessGrant %s needs none; this approval changes nothing", req.Namespace, ref))
	}
	return admission.Allowed("")
}

// canActAs returns what lets the grant's requester act as user (impersonate the user, or mint a
// token for the service account), or "" when nothing does, as the API server's own authorizer
// says for the requester's name and groups recorded at the grant's creation.
func (h *ApprovalValidator) canActAs(ctx context.Context, g *fixityv1.AccessGrant, user string) (string, error) {
	var groups []string
	if raw := g.Annotations[fixityv1.RequesterGroupsAnnotation]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &groups); err != nil {
			return "", fmt.Errorf("annotation %s of AccessGrant %s/%s: %w", fixityv1.RequesterGroupsAnnotation, g.Namespace, g.Name, err)
		}
	}
	type attempt struct {
		what string
		attr authorizationv1.ResourceAttributes
	}
	attempts := []attempt{{"impersonate user " + user, authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: user}}}
	if ns, name, err := serviceaccount.SplitUsername(user); err == nil {
		attempts = append(attempts,
			attempt{"impersonate service account " + ns + "/" + name, authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts", Namespace: ns, Name: name}},
			attempt{"create tokens for service account " + ns + "/" + name, authorizationv1.ResourceAttributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: ns, Name: name}})
	}
	for _, at := range attempts {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: grants.Requester(g), Groups: groups, ResourceAttributes: &at.attr,
		}}
		if err := h.Client.Create(ctx, sar); err != nil {
			return "", fmt.Errorf("SubjectAccessReview (%s): %w", at.what, err)
		}
		if sar.Status.Allowed {
			return at.what, nil
		}
	}
	return "", nil
}
