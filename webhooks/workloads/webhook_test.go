package workloads

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

// privileged denies privileged containers, as Pod Security would: the check the table controls.
type privileged struct{}

func (privileged) CheckPod(_ context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	var out []admit.Violation
	for _, c := range req.Pod.Spec.Containers {
		if c.SecurityContext != nil && ptr.Deref(c.SecurityContext.Privileged, false) {
			out = append(out, admit.New(p, "runtime.privileged", c.Name, "privileged containers are not allowed"))
		}
	}
	return out
}

func deployment(t testing.TB, priv bool) runtime.RawExtension {
	t.Helper()
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: builders.Image, SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(priv)}}}},
		}},
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func TestHandle(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, builders.Policy("prod")).Build()
	h := &Handler{Matcher: &policy.Matcher{Reader: c}, Checks: []admit.Check{privileged{}}}
	req := func(op admissionv1.Operation, obj, old runtime.RawExtension) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Operation: op, Namespace: "shop", Name: "web",
			Kind:   metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			Object: obj, OldObject: old,
		}}
	}
	resp := h.Handle(context.Background(), req(admissionv1.Create, deployment(t, true), runtime.RawExtension{}))
	if resp.Allowed || !strings.Contains(resp.Result.Message, `[policy prod] container "web": privileged containers are not allowed`) {
		t.Fatalf("a privileged template: allowed %t, %q", resp.Allowed, resp.Result.Message)
	}
	if resp := h.Handle(context.Background(), req(admissionv1.Create, deployment(t, false), runtime.RawExtension{})); !resp.Allowed {
		t.Fatalf("a template that passes: %q", resp.Result.Message)
	}
	// Scaling or relabelling a workload whose template a later policy would deny must not
	// freeze it: an update that leaves the template alone is allowed.
	if resp := h.Handle(context.Background(), req(admissionv1.Update, deployment(t, true), deployment(t, true))); !resp.Allowed {
		t.Fatalf("an update that leaves the template alone: %q", resp.Result.Message)
	}
	if resp := h.Handle(context.Background(), req(admissionv1.Update, deployment(t, true), deployment(t, false))); resp.Allowed {
		t.Fatal("an update that makes the template privileged is allowed")
	}
}
