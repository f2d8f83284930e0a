package pods

import (
	"encoding/json"
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
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

// The pod webhooks, mutating, validating and metadata, answer any AdmissionReview without
// panicking, and allow only a pod they could decode.
func FuzzPodWebhooks(f *testing.F) {
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		builders.Policy("prod", func(s *fixityv1.ImmutabilityPolicySpec) { s.Images.Digest = fixityv1.DigestRequire }),
		builders.Policy("audit", func(s *fixityv1.ImmutabilityPolicySpec) { s.Mode = fixityv1.ModeAudit })).Build()
	m := &policy.Matcher{Reader: c}
	podSecurity, err := lockdown.NewPodSecurity()
	if err != nil {
		f.Fatal(err)
	}
	annotations := &lockdown.AnnotationGuard{Operator: operatorUser}
	// No registry is reached, and trying fails at once rather than after retries.
	im := &images.Images{Registry: &images.Registry{Transport: builders.NoNetwork, Timeout: time.Millisecond}}
	guards := []admit.Guard{annotations, &lockdown.LabelGuard{Matcher: m, Operator: operatorUser}}
	checks := []admit.Check{podSecurity, &lockdown.InPlace{Operator: operatorUser}, im}
	handlers := []admission.Handler{
		&Mutator{Matcher: m, Mutators: []admit.Mutator{annotations, im}},
		&Validator{Matcher: m, Guards: guards, Checks: checks},
		&Metadata{Matcher: m, Annotations: annotations, Guards: guards},
	}
	readable := func(req admissionv1.AdmissionRequest) bool {
		if req.SubResource == "binding" {
			var b metav1.PartialObjectMetadata
			return json.Unmarshal(req.Object.Raw, &b) == nil
		}
		if _, err := decodePod(req.Object.Raw); err != nil {
			return false
		}
		if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
			_, err := decodePod(req.OldObject.Raw)
			return err == nil
		}
		return true
	}
	pod := builders.Pod("shop", "web", builders.Annotated(fixityv1.VerifiedAnnotation, `{"web":{"image":"`+builders.Image+`"}}`))
	encode := func(p *corev1.Pod) runtime.RawExtension {
		b, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "registry.example/web:2"
	changed.Labels = map[string]string{"app": "other"}
	request := func(op admissionv1.Operation, sub, user string, obj, old runtime.RawExtension) admissionv1.AdmissionRequest {
		return admissionv1.AdmissionRequest{
			UID: "1", Operation: op, Namespace: "shop", Name: "web", SubResource: sub,
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			UserInfo: authenticationv1.UserInfo{Username: user}, Object: obj, OldObject: old,
		}
	}
	builders.FuzzWebhook(f, handlers, readable,
		request(admissionv1.Create, "", "alice", encode(pod), runtime.RawExtension{}),
		request(admissionv1.Update, "", "alice", encode(changed), encode(pod)),
		request(admissionv1.Update, "status", "kubelet", encode(changed), encode(pod)),
		request(admissionv1.Update, "ephemeralcontainers", operatorUser, encode(changed), encode(pod)),
		request(admissionv1.Create, "binding", "scheduler", runtime.RawExtension{Raw: []byte(`{"metadata":{"name":"web","annotations":{"fixity.dev/tainted":"x"}},"target":{"name":"n"}}`)}, runtime.RawExtension{}),
	)
}
