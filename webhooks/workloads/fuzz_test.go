package workloads

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/workload"
	"github.com/fixity-dev/fixity/test/builders"
)

// The workload webhook answers any AdmissionReview without panicking, and allows only a workload
// whose pod template it could read.
func FuzzWorkloadWebhook(f *testing.F) {
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, builders.Policy("prod")).Build()
	podSecurity, err := lockdown.NewPodSecurity()
	if err != nil {
		f.Fatal(err)
	}
	h := &Handler{Matcher: &policy.Matcher{Reader: c}, Checks: []admit.Check{podSecurity}}
	readable := func(req admissionv1.AdmissionRequest) bool {
		gk := metav1.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
		if _, err := workload.PodTemplate(gk, req.Object.Raw); err != nil {
			return false
		}
		if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
			_, err := workload.PodTemplate(gk, req.OldObject.Raw)
			return err == nil
		}
		return true
	}
	request := func(op admissionv1.Operation, kind string, obj, old runtime.RawExtension) admissionv1.AdmissionRequest {
		return admissionv1.AdmissionRequest{
			UID: "1", Operation: op, Namespace: "shop", Name: "web",
			Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}, Object: obj, OldObject: old,
		}
	}
	builders.FuzzWebhook(f, []admission.Handler{h}, readable,
		request(admissionv1.Create, "Deployment", deployment(f, false), runtime.RawExtension{}),
		request(admissionv1.Update, "Deployment", deployment(f, true), deployment(f, false)),
		request(admissionv1.Create, "StatefulSet", deployment(f, false), runtime.RawExtension{}),
	)
}
