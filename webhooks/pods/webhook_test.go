package pods

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/randfill"

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

// The webhook decodes what the checks read, metadata and spec, exactly; status and managedFields
// are read past.
func TestDecodePodSkipsStatusAndManagedFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"},"annotations":{"a":"b"},
		"managedFields":[{"manager":"kubectl","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
		"spec":{"containers":[{"name":"web","image":"r/web@sha256:1","resources":{"limits":{"cpu":"1"}}}],"terminationGracePeriodSeconds":30},
		"status":{"phase":"Running","podIP":"10.0.0.1"}}`)
	pod, err := decodePod(raw)
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "web" || pod.Labels["app"] != "web" || pod.Annotations["a"] != "b" || pod.Spec.Containers[0].Image != "r/web@sha256:1" ||
		pod.Spec.Containers[0].Resources.Limits.Cpu().String() != "1" || *pod.Spec.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("decoded %+v", pod)
	}
	if pod.ManagedFields != nil || pod.Status.Phase != "" {
		t.Fatalf("managedFields %v and status %+v were decoded", pod.ManagedFields, pod.Status)
	}
	if _, err := decodePod([]byte(`{"kind":"Secret","metadata":{"name":"x"}}`)); err == nil || !strings.Contains(err.Error(), "the object is a Secret") {
		t.Fatalf("decoding a Secret: %v", err)
	}
}

// decodePod reads a pod exactly as the API server's own serializer does: every field of a pod
// filled at random (as apimachinery's round-trip tests do) decodes to the same pod, status and
// managedFields aside. What the two could read differently is refused instead: a key twice (the
// API server never sends one; a decoder that kept the first would see another pod than the one
// stored) and a key in another case.
func TestDecodePodReadsWhatTheAPIServerReads(t *testing.T) {
	codec := serializer.NewCodecFactory(operator.NewScheme()).UniversalDeserializer()
	f := randfill.New().NilChance(0.2).NumElements(1, 2).Funcs(
		// Values the API server itself could not encode are not what it sends.
		func(q *resource.Quantity, c randfill.Continue) {
			*q = resource.MustParse(strconv.Itoa(c.Intn(1000)) + "m")
		},
		func(t *metav1.Time, c randfill.Continue) { *t = metav1.Unix(c.Int63n(1<<32), 0).Rfc3339Copy() },
		func(t *metav1.MicroTime, c randfill.Continue) {
			*t = metav1.NewMicroTime(time.Unix(c.Int63n(1<<32), 0))
		},
		func(r *runtime.RawExtension, c randfill.Continue) { *r = runtime.RawExtension{Raw: []byte(`{}`)} },
		func(m *metav1.ManagedFieldsEntry, c randfill.Continue) {},
		func(s *corev1.PodStatus, c randfill.Continue) {},
	)
	for i := range 200 {
		in := &corev1.Pod{}
		f.Fill(in)
		in.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		in.ManagedFields = nil
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		want := &corev1.Pod{}
		if _, _, err := codec.Decode(b, nil, want); err != nil {
			t.Fatalf("pod %d: the API server's decoder: %v", i, err)
		}
		got, err := decodePod(b)
		if err != nil {
			t.Fatalf("pod %d: %v\n%s", i, err, b)
		}
		if !apiequality.Semantic.DeepEqual(got, want) {
			t.Fatalf("pod %d decodes differently:\n%s", i, cmp.Diff(want, got))
		}
	}
	for _, bad := range []string{
		`{"kind":"Pod","spec":{"containers":[{"name":"a","image":"r/a@sha256:1","image":"r/evil:latest"}]}}`,
		`{"kind":"Pod","metadata":{"annotations":{"a":"1"},"annotations":{"b":"2"}}}`,
		`{"kind":"Pod","metadata":{"name":"x","name":"y"}}`,
	} {
		if _, err := decodePod([]byte(bad)); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
	pod, err := decodePod([]byte(`{"kind":"Pod","spec":{"containers":[{"name":"a","Image":"r/evil:latest"}]}}`))
	if err != nil || pod.Spec.Containers[0].Image != "" {
		t.Errorf("a key in another case was read as the field: %+v, %v", pod, err)
	}
}
