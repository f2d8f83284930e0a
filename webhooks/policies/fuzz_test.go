package policies

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/builders"
)

// The policy webhook answers any AdmissionReview without panicking, and allows only a policy it
// could decode.
func FuzzPolicyWebhook(f *testing.F) {
	readable := func(req admissionv1.AdmissionRequest) bool {
		return json.Unmarshal(req.Object.Raw, &fixityv1.ImmutabilityPolicy{}) == nil
	}
	builders.FuzzWebhook(f, []admission.Handler{&Handler{}}, readable,
		request(f, fixityv1.AttestationCondition{Expression: `predicate.builder.id == "https://ci"`}).AdmissionRequest,
		request(f, fixityv1.AttestationCondition{Expression: `predicate.(`}).AdmissionRequest,
	)
}
