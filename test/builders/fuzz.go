package builders

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Review is the AdmissionReview body the API server would POST for req.
func Review(req admissionv1.AdmissionRequest) []byte {
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	if err != nil {
		panic(err) // an AdmissionRequest always encodes
	}
	return b
}

// FuzzWebhook fuzzes handlers with AdmissionReview bodies, seeded with seeds (the requests of
// the package's tests), through the http.Handler the webhook server serves, with panics left to
// crash. Every body gets an AdmissionReview answer; and an allow is only ever of a request whose
// object readable says the webhook could read (it gets the decoded request). The fuzzed input
// also picks which of handlers answers.
func FuzzWebhook(f *testing.F, handlers []admission.Handler, readable func(admissionv1.AdmissionRequest) bool, seeds ...admissionv1.AdmissionRequest) {
	hooks := make([]*webhook.Admission, len(handlers))
	for i, h := range handlers {
		hooks[i] = &webhook.Admission{Handler: h, RecoverPanic: ptr.To(false)}
	}
	for _, s := range seeds {
		for i := range handlers {
			f.Add(uint8(i), Review(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		hooks[int(which)%len(hooks)].ServeHTTP(rec, r)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("answer %d %q is not an AdmissionReview: %v", rec.Code, rec.Body.String(), err)
		}
		if !out.Response.Allowed {
			return
		}
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
			t.Fatalf("allowed a body that is no AdmissionReview: %q", body)
		}
		if !readable(*in.Request) {
			t.Fatalf("allowed a %s of %s whose object the webhook cannot read: %q", in.Request.Operation, in.Request.Kind.Kind, in.Request.Object.Raw)
		}
	})
}

// NoNetwork is a transport that dials nothing: unit and fuzz tests never reach a registry.
var NoNetwork http.RoundTripper = noNetwork{}

type noNetwork struct{}

func (noNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("no network in this test: %s %s", r.Method, r.URL)
}
