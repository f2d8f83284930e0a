package lockdown

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
)

func TestInPlaceImageChangesAreRefused(t *testing.T) {
	const operator = "system:serviceaccount:fixity-system:fixity-controller-manager"
	pod := func(web, models string, ephemeral ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
		p.Spec.Containers = []corev1.Container{{Name: "web", Image: web}}
		p.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: models}}}}
		for _, e := range ephemeral {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: e}})
		}
		return p
	}
	request := func(op admissionv1.Operation, user string, old, updated *corev1.Pod) *admit.Request {
		return &admit.Request{Pod: updated, OldPod: old, Admission: admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: op, UserInfo: authenticationv1.UserInfo{Username: user},
		}}}
	}
	p := &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}
	for _, tc := range []struct {
		name string
		req  *admit.Request
		want []string
	}{
		{"container image changed", request(admissionv1.Update, "alice", pod("r/web:1", "r/m:1"), pod("r/web:2", "r/m:1")),
			[]string{`[policy prod] container "web": image changed in place from "r/web:1" to "r/web:2"; a running pod is never changed: roll out a new pod instead`}},
		{"image volume changed", request(admissionv1.Update, "alice", pod("r/web:1", "r/m:1"), pod("r/web:1", "r/m:2")),
			[]string{`[policy prod] volume "models": image changed in place from "r/m:1" to "r/m:2"`}},
		{"an ephemeral container added", request(admissionv1.Update, "alice", pod("r/web:1", "r/m:1"), pod("r/web:1", "r/m:1", "busybox")), nil},
		{"labels only", request(admissionv1.Update, "alice", pod("r/web:1", "r/m:1"), pod("r/web:1", "r/m:1")), nil},
		{"the operator", request(admissionv1.Update, operator, pod("r/web:1", "r/m:1"), pod("r/web:2", "r/m:1")), nil},
		{"a create", request(admissionv1.Create, "alice", nil, pod("r/web:2", "r/m:1")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := (&InPlace{Operator: operator}).CheckPod(context.Background(), p, tc.req)
			if len(vs) != len(tc.want) {
				t.Fatalf("violations %v, want %d", vs, len(tc.want))
			}
			for i, v := range vs {
				if !strings.HasPrefix(v.String(), tc.want[i]) {
					t.Fatalf("violation %q, want it to start with %q", v.String(), tc.want[i])
				}
			}
		})
	}
}
