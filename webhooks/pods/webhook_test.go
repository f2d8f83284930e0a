package pods

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

const operatorUser = "system:serviceaccount:fixity-system:fixity-controller-manager"

func raw(t *testing.T, pod *corev1.Pod) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

// Handle, from the admission request the API server sends: only the operator may change a
// pod's fixity.dev/* annotations, whatever the policies say, and the denial names the user and
// the annotation.
func TestValidatorGuardsTheOperatorsAnnotations(t *testing.T) {
	scheme := operator.NewScheme()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, builders.Policy("prod")).Build()
	guard := &lockdown.AnnotationGuard{Operator: operatorUser}
	v := &Validator{Matcher: &policy.Matcher{Reader: c}, Guards: []admit.Guard{guard}}

	old := builders.Pod("shop", "web", builders.Annotated(fixityv1.VerifiedAnnotation, `{"web":{"image":"`+builders.Image+`"}}`))
	forged := old.DeepCopy()
	forged.Annotations[fixityv1.VerifiedAnnotation] = `{"web":{"image":"forged"}}`
	for _, tc := range []struct {
		user    string
		allowed bool
	}{
		{"mallory", false},
		{operatorUser, true},
	} {
		resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Update, Namespace: "shop", Name: "web",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			UserInfo:  authenticationv1.UserInfo{Username: tc.user},
			Object:    raw(t, forged),
			OldObject: raw(t, old),
		}})
		if resp.Allowed != tc.allowed {
			t.Fatalf("%s: allowed = %t (%s), want %t", tc.user, resp.Allowed, resp.Result.Message, tc.allowed)
		}
		if !tc.allowed && (!strings.Contains(resp.Result.Message, "mallory changed "+fixityv1.VerifiedAnnotation)) {
			t.Fatalf("the denial names the user and the annotation: %q", resp.Result.Message)
		}
	}
}

// A request that does not decode is refused with a 400, never allowed.
func TestValidatorRefusesWhatDoesNotDecode(t *testing.T) {
	scheme := operator.NewScheme()
	v := &Validator{Matcher: &policy.Matcher{Reader: fake.NewClientBuilder().WithScheme(scheme).Build()}}
	resp := v.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Create, Namespace: "shop", Name: "web",
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Object: runtime.RawExtension{Raw: []byte(`{"spec": 7}`)},
	}})
	if resp.Allowed || resp.Result.Code != 400 {
		t.Fatalf("undecodable pod: allowed %t, code %d", resp.Allowed, resp.Result.Code)
	}
}
