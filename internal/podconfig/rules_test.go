package podconfig

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
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
	ignore := builders.Policy("off", func(s *fixityv1.ImmutabilityPolicySpec) { s.Config.Mutable = fixityv1.ConfigIgnore })
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

func TestRecordForReplace(t *testing.T) {
	ctx := context.Background()
	cfg := cm("cfg", map[string]string{"a": "1"})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "creds"}, Data: map[string][]byte{"p": []byte("w")}}
	rules := &Rules{Store: newStore(nil, []client.Object{cfg, secret})}
	replace := builders.Policy("replace") // config.mutable unset: Replace
	ignore := builders.Policy("off", func(s *fixityv1.ImmutabilityPolicySpec) { s.Config.Mutable = fixityv1.ConfigIgnore })
	pod := func() *corev1.Pod {
		p := builders.Pod("app", "p")
		p.Annotations = map[string]string{fixityv1.ConfigAnnotation: `{"key":"forged","objects":{}}`}
		p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
		}
		return p
	}
	req := &admit.Request{Pod: pod()}
	if vs := rules.MutatePod(ctx, []fixityv1.ImmutabilityPolicy{*ignore, *replace}, req); len(vs) != 0 {
		t.Fatalf("violations: %v", vs)
	}
	rec, ok, err := ReadRecord(req.Pod)
	want := Record{Key: testKey.ID(), Objects: map[string]string{"ConfigMap/cfg": sum(t, testKey, cfg), "Secret/creds": sum(t, testKey, secret)}}
	if !ok || err != nil || rec.Encode() != want.Encode() {
		t.Errorf("record = %+v (%v, %v), want %+v: the used objects that exist, the forged record dropped", rec, ok, err, want)
	}

	req = &admit.Request{Pod: pod()}
	rules.MutatePod(ctx, []fixityv1.ImmutabilityPolicy{*ignore}, req)
	if _, ok, _ := ReadRecord(req.Pod); ok {
		t.Error("a pod under no Replace policy got a record (or kept the forged one)")
	}
	req = &admit.Request{Pod: pod(), Template: true}
	rules.MutatePod(ctx, []fixityv1.ImmutabilityPolicy{*replace}, req)
	if _, ok, _ := ReadRecord(req.Pod); ok {
		t.Error("a workload template got a record: its pods get their own when created")
	}

	// An object that cannot be read denies the pod: admitted without a record, it could never
	// be replaced for a change.
	broken := &Rules{Store: newStore(nil, nil)}
	broken.Store.Cache = nil
	broken.Store.Live = interceptor.NewClient(broken.Store.Live.(client.WithWatch), interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return errors.New("connection refused")
	}})
	req = &admit.Request{Pod: pod()}
	vs := broken.MutatePod(ctx, []fixityv1.ImmutabilityPolicy{*replace}, req)
	if len(vs) != 3 || !vs[1].Transient || vs[1].Policy != "replace" || !strings.Contains(vs[1].Message, `ConfigMap "cfg" (volume "v") cannot be read`) {
		t.Errorf("violations = %+v, want one transient per object naming it", vs)
	}
}
