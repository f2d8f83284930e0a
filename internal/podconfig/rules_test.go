package podconfig

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/test/builders"
)

func TestDenyMutable(t *testing.T) {
	mutable := cm("mutable", map[string]string{"a": "1"})
	frozen := cm("frozen", map[string]string{"a": "1"})
	frozen.Immutable = ptr.To(true)
	rules := &Rules{Store: &Store{Live: newStore(nil, []client.Object{mutable, frozen}).Live}}
	deny := builders.Policy("cfg", func(s *fixityv1.ImmutabilityPolicySpec) { s.Config.Mutable = fixityv1.ConfigDeny })
	ignore := builders.Policy("off")
	volume := func(name string, optional bool) corev1.Volume {
		return corev1.Volume{Name: "v-" + name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr.To(optional)}}}
	}
	request := func(op admissionv1.Operation, template bool, vols ...corev1.Volume) *admit.Request {
		pod := builders.Pod("app", "p")
		pod.Spec.Volumes = vols
		return &admit.Request{Pod: pod, Template: template, Admission: admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: op}}}
	}
	for _, tc := range []struct {
		name   string
		policy *fixityv1.ImmutabilityPolicy
		req    *admit.Request
		want   []string
	}{
		{"a mutable ConfigMap is denied, named with its use", deny, request(admissionv1.Create, false, volume("mutable", false)),
			[]string{`ConfigMap "mutable" (volume "v-mutable") is mutable, and spec.config.mutable is Deny: create a new one with immutable: true`}},
		{"optional references too, when the object exists", deny, request(admissionv1.Create, false, volume("mutable", true)),
			[]string{`ConfigMap "mutable" (volume "v-mutable") is mutable`}},
		{"an immutable one is admitted", deny, request(admissionv1.Create, false, volume("frozen", false)), nil},
		{"a missing one is the kubelet's to report", deny, request(admissionv1.Create, false, volume("absent", false)), nil},
		{"a template is judged", deny, request("", true, volume("mutable", false)), []string{`ConfigMap "mutable"`}},
		{"an update of a running pod is not", deny, request(admissionv1.Update, false, volume("mutable", false)), nil},
		{"Ignore has no config rule", ignore, request(admissionv1.Create, false, volume("mutable", false)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := rules.CheckPod(context.Background(), tc.policy, tc.req)
			if len(vs) != len(tc.want) {
				t.Fatalf("violations = %v, want %d", vs, len(tc.want))
			}
			for i, w := range tc.want {
				if vs[i].Rule != RuleMutable || vs[i].Policy != tc.policy.Name || !strings.Contains(vs[i].Message, w) || vs[i].Transient {
					t.Errorf("violation %d = %+v, want rule %s of %s saying %q", i, vs[i], RuleMutable, tc.policy.Name, w)
				}
			}
		})
	}
}
