package podaccess

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/test/builders"
)

// grantedHandler is a Handler for namespace shop, whose policy denies exec and port-forward,
// holding pod web and alice's grant inc-1 for Exec on it (15 minutes, from a minute before now).
func grantedHandler(now time.Time) (*Handler, client.Client, *fixityv1.AccessGrant, *corev1.Pod, *clocktesting.FakePassiveClock) {
	pod := builders.Pod("shop", "web")
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
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, p, pod, g).WithStatusSubresource(g).Build()
	clock := clocktesting.NewFakePassiveClock(now)
	m := &policy.Matcher{Reader: c}
	h := &Handler{Reader: c, APIReader: c, Matcher: m, Access: &lockdown.Access{
		Finder:   &grants.Finder{Reader: c, Matcher: m, Clock: clock},
		Recorder: &grants.Recorder{Client: c, Reader: c, Events: events.NewFakeRecorder(1 << 16), Clock: clock},
	}}
	return h, c, g, pod, clock
}

// Handle, from the CONNECT request the API server sends for kubectl exec: denied without a
// grant, with a message saying how to get one; let through for the grant's requester, recorded,
// and the pod tainted; never for someone else.
func TestExecNeedsTheRequestersGrant(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h, c, g, pod, clock := grantedHandler(now)
	exec := func(user string, dryRun bool) admission.Response {
		return h.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Connect, Namespace: "shop", Name: "web", SubResource: "exec",
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			UserInfo: authenticationv1.UserInfo{Username: user}, DryRun: ptr.To(dryRun),
		}})
	}

	if resp := exec("bob", false); resp.Allowed || !strings.Contains(resp.Result.Message, "belongs to alice, not bob") {
		t.Fatalf("bob: allowed %t, %q", resp.Allowed, resp.Result.Message)
	}
	if resp := exec("alice", true); !resp.Allowed {
		t.Fatalf("alice, dry run: %q", resp.Result.Message)
	}
	got := &fixityv1.AccessGrant{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(g), got); err != nil || len(got.Status.Sessions) != 0 {
		t.Fatalf("a dry run is not a session: %+v, %v", got.Status.Sessions, err)
	}
	if resp := exec("alice", false); !resp.Allowed {
		t.Fatalf("alice: %q", resp.Result.Message)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(g), got); err != nil || len(got.Status.Sessions) != 1 || got.Status.Sessions[0].User != "alice" {
		t.Fatalf("the session is recorded: %+v, %v", got.Status.Sessions, err)
	}
	tainted := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), tainted); err != nil || !strings.HasPrefix(tainted.Annotations[fixityv1.TaintedAnnotation], string(fixityv1.CheckInteractiveAccess)) {
		t.Fatalf("the pod is tainted before the exec is let through: %v, %v", tainted.Annotations, err)
	}
	clock.SetTime(now.Add(15 * time.Minute))
	if resp := exec("alice", false); resp.Allowed {
		t.Fatal("an expired grant lets alice in")
	}
}
