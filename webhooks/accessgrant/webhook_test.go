package accessgrant

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func grantRequest(op admissionv1.Operation, user, obj, old string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: "shop", Name: "inc-1",
		UserInfo: authenticationv1.UserInfo{Username: user},
		Object:   runtime.RawExtension{Raw: []byte(obj)}, OldObject: runtime.RawExtension{Raw: []byte(old)},
	}}
}

// A grant is always made out to its creator, and its requester cannot be changed afterwards by
// anyone but the operator.
func TestValidatorKeepsTheRequester(t *testing.T) {
	v := &Validator{Operator: "system:serviceaccount:fixity-system:fixity-controller-manager"}
	ctx := context.Background()
	byAlice := `{"metadata":{"annotations":{"` + fixityv1.RequesterAnnotation + `":"alice","` + fixityv1.RequesterGroupsAnnotation + `":"[]"}},"spec":{"pods":["web"]}}`
	aliceAsAdmin := `{"metadata":{"annotations":{"` + fixityv1.RequesterAnnotation + `":"alice","` + fixityv1.RequesterGroupsAnnotation + `":"[\"system:masters\"]"}},"spec":{"pods":["web"]}}`
	byBob := `{"metadata":{"annotations":{"` + fixityv1.RequesterAnnotation + `":"bob"}},"spec":{"pods":["web"]}}`
	for _, tc := range []struct {
		name      string
		req       admission.Request
		allowed   bool
		mentioned string
	}{
		{"created by its requester", grantRequest(admissionv1.Create, "alice", byAlice, ""), true, ""},
		{"created for someone else", grantRequest(admissionv1.Create, "bob", byAlice, ""), false, `created by "bob"`},
		{"created with groups the requester is not in", grantRequest(admissionv1.Create, "alice", aliceAsAdmin, ""), false, `created by a member of []`},
		{"requester changed", grantRequest(admissionv1.Update, "bob", byBob, byAlice), false, "bob tried to"},
		{"requester changed by the operator", grantRequest(admissionv1.Update, v.Operator, byBob, byAlice), true, ""},
		{"not a grant", grantRequest(admissionv1.Create, "alice", `[]`, ""), false, "decoding AccessGrant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := v.Handle(ctx, tc.req)
			if resp.Allowed != tc.allowed || !strings.Contains(resp.Result.Message, tc.mentioned) {
				t.Fatalf("allowed %t, %q; want %t mentioning %q", resp.Allowed, resp.Result.Message, tc.allowed, tc.mentioned)
			}
		})
	}
}
