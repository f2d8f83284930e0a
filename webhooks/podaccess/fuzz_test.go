package podaccess

import (
	"encoding/json"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

// The pod access webhooks (pods/exec and friends, nodes/proxy) answer any AdmissionReview
// without panicking; nodes/proxy allows only a path it could read.
func FuzzPodAccessWebhooks(f *testing.F) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := builders.Policy("prod", func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Runtime.Exec, s.Runtime.PortForward = fixityv1.Deny, fixityv1.Deny
	})
	g := &fixityv1.AccessGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "inc-1", CreationTimestamp: metav1.NewTime(now.Add(-time.Minute)),
			Annotations: map[string]string{fixityv1.RequesterAnnotation: "alice"}},
		Spec: fixityv1.AccessGrantSpec{Pods: []string{"web"}, Access: []fixityv1.AccessKind{fixityv1.AccessExec},
			Duration: &metav1.Duration{Duration: 15 * time.Minute}, Reason: "INC-1"},
	}
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, p, builders.Pod("shop", "web"), g).WithStatusSubresource(g).Build()
	clock := clocktesting.NewFakePassiveClock(now)
	h := &Handler{Reader: c, APIReader: c, Matcher: &policy.Matcher{Reader: c}, Access: &lockdown.Access{
		Finder:   &grants.Finder{Reader: c, Matcher: &policy.Matcher{Reader: c}, Clock: clock},
		Recorder: &grants.Recorder{Client: c, Reader: c, Events: events.NewFakeRecorder(1 << 16), Clock: clock},
	}}
	readable := func(req admissionv1.AdmissionRequest) bool {
		if req.Resource.Resource != "nodes" {
			return true // exec, attach and port-forward are decided by the pod they name, not their options
		}
		var opts struct {
			Path string `json:"path"`
		}
		return json.Unmarshal(req.Object.Raw, &opts) == nil
	}
	connect := func(resource, name, sub, user, object string) admissionv1.AdmissionRequest {
		return admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Connect, Namespace: "shop", Name: name, SubResource: sub,
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: resource},
			UserInfo: authenticationv1.UserInfo{Username: user}, Object: runtime.RawExtension{Raw: []byte(object)},
		}
	}
	builders.FuzzWebhook(f, []admission.Handler{h, &NodeProxy{Handler: h}}, readable,
		connect("pods", "web", "exec", "alice", `{"kind":"PodExecOptions","apiVersion":"v1","command":["sh"]}`),
		connect("pods", "web", "portforward", "bob", `{"kind":"PodPortForwardOptions","apiVersion":"v1"}`),
		connect("nodes", "node-1", "proxy", "alice", `{"kind":"NodeProxyOptions","apiVersion":"v1","path":"/exec/shop/web/app"}`),
		connect("nodes", "node-1", "proxy", "bob", `{"kind":"NodeProxyOptions","apiVersion":"v1","path":"/stats/../attach/shop/web/app"}`),
	)
}
