package policies

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func request(t testing.TB, conditions ...fixityv1.AttestationCondition) admission.Request {
	t.Helper()
	p := &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}
	p.Spec.Images.Verify = &fixityv1.VerifyRules{
		Authorities:  []fixityv1.Authority{{Name: "ci"}},
		Attestations: []fixityv1.AttestationRule{{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1", Conditions: conditions}},
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}}
}

func TestHandle(t *testing.T) {
	for _, tc := range []struct {
		name       string
		expression string
		allowed    bool
		want       string
	}{
		{"compiles", `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`, true, ""},
		{"syntax error", `predicate.runDetails.builder.id.startsWith(`, false, "policy prod: spec.images.verify.attestations[0].conditions[0].expression: ERROR"},
		{"unknown variable", `provenance.x == 1`, false, "undeclared reference to 'provenance'"},
		{"not a boolean", `"text"`, false, "spec.images.verify.attestations[0].conditions[0].expression: must be a boolean, is string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := (&Handler{}).Handle(context.Background(), request(t, fixityv1.AttestationCondition{Expression: tc.expression}))
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !tc.allowed && !strings.Contains(resp.Result.Message, tc.want) {
				t.Fatalf("message %q, want it to contain %q", resp.Result.Message, tc.want)
			}
		})
	}
}
