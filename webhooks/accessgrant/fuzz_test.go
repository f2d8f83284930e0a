package accessgrant

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

// The AccessGrant and AccessApproval webhooks answer any AdmissionReview without panicking, and
// allow only an object they could decode.
func FuzzGrantWebhooks(f *testing.F) {
	g := &fixityv1.AccessGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "inc-1", UID: "uid-1", CreationTimestamp: metav1.NewTime(time.Now()),
			Annotations: map[string]string{fixityv1.RequesterAnnotation: "alice", fixityv1.RequesterGroupsAnnotation: `["developers"]`}},
		Spec: fixityv1.AccessGrantSpec{Pods: []string{"web"}, Access: []fixityv1.AccessKind{fixityv1.AccessExec}, Reason: "INC-1: checkout"},
	}
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		builders.Policy("prod", func(s *fixityv1.ImmutabilityPolicySpec) { s.Runtime.Approvals = 1 }), g).Build()
	m := &policy.Matcher{Reader: c}
	gr := &GrantReader{Reader: c}
	handlers := []admission.Handler{
		&Mutator{Reader: c, Matcher: m}, &Validator{Operator: "operator"},
		&ApprovalMutator{Grants: gr}, &ApprovalValidator{Grants: gr, Finder: &grants.Finder{Reader: c, Matcher: m}, Client: c, Operator: "operator"},
	}
	readable := func(req admissionv1.AdmissionRequest) bool {
		read := func(raw []byte) error { _, err := decode(raw); return err }
		if req.Kind.Kind == "AccessApproval" {
			read = func(raw []byte) error { _, err := decodeApproval(raw); return err }
		}
		if read(req.Object.Raw) != nil {
			return false
		}
		return req.Operation != admissionv1.Update || read(req.OldObject.Raw) == nil
	}
	raw := func(s string) runtime.RawExtension {
		if s == "" {
			return runtime.RawExtension{}
		}
		return runtime.RawExtension{Raw: []byte(s)}
	}
	request := func(op admissionv1.Operation, kind, user, obj, old string) admissionv1.AdmissionRequest {
		return admissionv1.AdmissionRequest{
			UID: "1", Operation: op, Namespace: "shop", Name: "x",
			Kind:     metav1.GroupVersionKind{Group: "fixity.dev", Version: "v1alpha1", Kind: kind},
			UserInfo: authenticationv1.UserInfo{Username: user, Groups: []string{"developers"}},
			Object:   raw(obj), OldObject: raw(old),
		}
	}
	stamped := `{"metadata":{"annotations":{"` + fixityv1.ApproverAnnotation + `":"bob","` + fixityv1.ApprovedGrantUIDAnnotation + `":"uid-1"}},"spec":{"grant":"inc-1"}}`
	builders.FuzzWebhook(f, handlers, readable,
		request(admissionv1.Create, "AccessGrant", "alice", `{"spec":{"pods":["web"],"access":["Exec"],"reason":"INC-1: checkout"}}`, ""),
		request(admissionv1.Update, "AccessGrant", "bob", `{"metadata":{"annotations":{"fixity.dev/requester":"bob"}}}`, `{"metadata":{"annotations":{"fixity.dev/requester":"alice"}}}`),
		request(admissionv1.Create, "AccessApproval", "bob", stamped, ""),
		request(admissionv1.Create, "AccessApproval", "alice", `{"spec":{"grant":"inc-1"}}`, ""),
		request(admissionv1.Update, "AccessApproval", "mallory", `{"metadata":{"annotations":{"fixity.dev/approver":"carol"}},"spec":{"grant":"inc-1"}}`, stamped),
	)
}
