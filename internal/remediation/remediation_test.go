package remediation

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/fixity-dev/fixity/test/builders"
)

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		value *intstr.IntOrString
		total int
		want  int
	}{
		{nil, 5, 1},
		{nil, 0, 0},
		{ptr.To(intstr.FromInt32(2)), 5, 2},
		{ptr.To(intstr.FromInt32(9)), 5, 5},
		{ptr.To(intstr.FromString("50%")), 3, 1},
		{ptr.To(intstr.FromString("10%")), 5, 0},
		{ptr.To(intstr.FromString("100%")), 7, 7},
	} {
		got, err := Budget(tc.value, tc.total)
		if err != nil || got != tc.want {
			t.Errorf("Budget(%v, %d) = %d, %v; want %d", tc.value, tc.total, got, err, tc.want)
		}
	}
	if _, err := Budget(ptr.To(intstr.FromString("half")), 4); err == nil || !strings.Contains(err.Error(), `"half"`) {
		t.Errorf("a budget that is neither a number nor a percentage: error %v, want one naming it", err)
	}
}

func TestBreaker(t *testing.T) {
	for _, tc := range []struct {
		max              int32
		matched, drifted int
		want             bool
	}{
		{50, 0, 0, true},
		{50, 4, 2, true},  // 50% is not over 50%
		{50, 4, 3, false}, // 75%
		{0, 10, 1, false},
		{100, 3, 3, true},
		{10, 100, 11, false},
	} {
		if got, msg := Breaker(tc.max, tc.matched, tc.drifted, "nodes"); got != tc.want || !strings.Contains(msg, "nodes") {
			t.Errorf("max %d, %d of %d drifted: allowed = %t (%s), want %t", tc.max, tc.drifted, tc.matched, got, msg, tc.want)
		}
	}
}

func TestCensus(t *testing.T) {
	var c Census[string]
	members := []string{"a", "b"}
	seen := map[string]bool{"a": true}
	list := func() ([]string, error) { return members, nil }
	evaluated := func(m string) bool { return seen[m] }
	if ok, _ := c.Trusted("p", 1, list, evaluated); ok {
		t.Fatal("trusted before every member was evaluated")
	}
	seen["b"] = true
	if ok, _ := c.Trusted("p", 1, list, evaluated); !ok {
		t.Fatal("not trusted once every member was evaluated")
	}
	seen["b"] = false // answered from memory for this generation
	if ok, _ := c.Trusted("p", 1, list, evaluated); !ok {
		t.Fatal("forgot a complete census")
	}
	if ok, _ := c.Trusted("p", 2, list, evaluated); ok {
		t.Fatal("a new generation must be counted again")
	}
	seen["b"] = true
	_, _ = c.Trusted("p", 2, list, evaluated)
	c.Invalidate() // a namespace joined
	seen["c"], members = false, append(members, "c")
	if ok, _ := c.Trusted("p", 2, list, evaluated); ok {
		t.Fatal("trusted after members joined without being evaluated")
	}
}

// budgetRefusal is the API server's answer to an eviction a PodDisruptionBudget refuses.
func budgetRefusal() error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause}}}
	return err
}

func TestEvictor(t *testing.T) {
	ctx := context.Background()
	pod := builders.Pod("shop", "web-1")
	var answer error
	var calls int
	c := fake.NewClientBuilder().WithObjects(pod).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			calls++
			if sub != "eviction" {
				t.Fatalf("subresource %q: an evictor never deletes", sub)
			}
			if ev := subObj.(*policyv1.Eviction); ev.DeleteOptions.Preconditions == nil || *ev.DeleteOptions.Preconditions.UID != pod.UID {
				t.Fatalf("eviction without the pod's UID as precondition: %+v", ev.DeleteOptions)
			}
			return answer
		},
	}).Build()
	e := NewEvictor(c)

	answer = budgetRefusal()
	var waits []time.Duration
	for range 3 {
		ev, err := e.Evict(ctx, pod)
		if err != nil || ev.Result != Refused || !ev.Budget {
			t.Fatalf("refused by a budget: %+v, %v", ev, err)
		}
		waits = append(waits, ev.RetryAfter)
	}
	if waits[0] != EvictionRetry || waits[1] != 2*EvictionRetry || waits[2] != 4*EvictionRetry {
		t.Errorf("backoff = %v, want 1s, 2s, 4s", waits)
	}
	answer = apierrors.NewTooManyRequests("throttled", 1)
	if ev, _ := e.Evict(ctx, pod); ev.Result != Refused || ev.Budget {
		t.Errorf("throttling is a refusal, not a budget's: %+v", ev)
	}
	answer = nil
	if ev, err := e.Evict(ctx, pod); err != nil || ev.Result != Evicted {
		t.Errorf("accepted: %+v, %v", ev, err)
	}
	answer = budgetRefusal()
	if ev, _ := e.Evict(ctx, pod); ev.RetryAfter != EvictionRetry {
		t.Errorf("after an eviction went through, the backoff starts again: %v", ev.RetryAfter)
	}
	answer = apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod.Name)
	if ev, err := e.Evict(ctx, pod); err != nil || ev.Result != Gone {
		t.Errorf("gone: %+v, %v", ev, err)
	}
	answer = apierrors.NewInternalError(context.DeadlineExceeded)
	if _, err := e.Evict(ctx, pod); err == nil || !strings.Contains(err.Error(), "shop/web-1") {
		t.Errorf("an API error names the pod: %v", err)
	}
}

// gateFixture is a ReplicaSet of three pods and a gate over a fake client with a fake clock.
type gateFixture struct {
	gate  *Gate
	clock *clocktesting.FakeClock
	owner *Owner
	pods  []corev1.Pod
}

func newGateFixture(t *testing.T, desired, ready int32) *gateFixture {
	t.Helper()
	rs := builders.ReplicaSet("shop", "web-abc", desired, ready)
	c := fake.NewClientBuilder().WithObjects(rs).Build()
	f := &gateFixture{clock: clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))}
	f.gate = &Gate{Client: c, Reader: c, Namespace: "fixity-system", Timeout: time.Minute, Clock: f.clock}
	ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}
	o, err := ReadOwner(context.Background(), c, "shop", &ref)
	if err != nil || o == nil || !o.Known || o.Desired != desired || o.Ready != ready || o.Template == nil {
		t.Fatalf("ReadOwner = %+v, %v", o, err)
	}
	f.owner = o
	for _, name := range []string{"web-abc-1", "web-abc-2", "web-abc-3"}[:desired] {
		f.pods = append(f.pods, *builders.Pod("shop", name, builders.OwnedBy(rs, "ReplicaSet")))
	}
	return f
}

func (f *gateFixture) check(t *testing.T, pod int) Verdict {
	t.Helper()
	v, err := f.gate.Check(context.Background(), f.owner, &f.pods[pod], f.pods)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGateOneAtATime(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	if v := f.check(t, 0); !v.Open {
		t.Fatalf("a healthy owner's first pod: %+v", v)
	}
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err != nil {
		t.Fatal(err)
	}
	// The evicted pod is still in the cache, Ready, and the owner's status not updated yet:
	// the next pod waits all the same.
	if v := f.check(t, 1); v.Open || v.Stuck {
		t.Fatalf("next pod right after an eviction: %+v", v)
	}
	if v := f.check(t, 0); v.Open {
		t.Fatalf("the evicted pod itself: %+v", v)
	}
	// Gone, and its replacement not Ready yet.
	replacement := *builders.Pod("shop", "web-abc-4", builders.NotReady)
	f.pods[0] = replacement
	f.owner.Ready = 2
	if v := f.check(t, 1); v.Open || !strings.Contains(v.Message, "2 of the 3 Ready pods") {
		t.Fatalf("replacement not Ready: %+v", v)
	}
	// Ready: the next one may go, and the entry is dropped.
	f.pods[0].Status.Conditions[0].Status = corev1.ConditionTrue
	f.owner.Ready = 3
	if v := f.check(t, 1); !v.Open {
		t.Fatalf("owner recovered: %+v", v)
	}
	if e, _ := f.gate.read(ctx, f.owner); e != nil {
		t.Fatalf("ledger entry kept after recovery: %+v", e)
	}
}

func TestGateReportsStuckAfterTimeout(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err != nil {
		t.Fatal(err)
	}
	f.pods, f.owner.Ready = f.pods[1:], 2 // the replacement is never created (denied)
	f.clock.Step(59 * time.Second)
	if v := f.check(t, 0); v.Open || v.Stuck {
		t.Fatalf("within the timeout: %+v", v)
	}
	f.clock.Step(time.Second)
	v := f.check(t, 0)
	if v.Open || !v.Stuck || !strings.Contains(v.Message, "ReplicaSet shop/web-abc has 2 Ready pods, not the 3") {
		t.Fatalf("after the timeout: %+v", v)
	}
	// A restart (a new gate reading the same ledger) remembers.
	restarted := &Gate{Client: f.gate.Client, Reader: f.gate.Reader, Namespace: f.gate.Namespace, Timeout: time.Minute, Clock: f.clock}
	if v, _ := restarted.Check(ctx, f.owner, &f.pods[0], f.pods); !v.Stuck {
		t.Fatalf("after a restart: %+v", v)
	}
	// Scaled down to what it has: recovered.
	f.owner.Desired = 2
	if v := f.check(t, 0); !v.Open {
		t.Fatalf("scaled down to the Ready pods it has: %+v", v)
	}
}

func TestGateKeepsReplicasMinusOne(t *testing.T) {
	f := newGateFixture(t, 3, 2)
	builders.NotReady(&f.pods[2]) // a sibling is down already
	if v := f.check(t, 0); v.Open || !strings.Contains(v.Message, "only 1 other Ready pods of 3") {
		t.Fatalf("replacing a Ready pod while a sibling is down: %+v", v)
	}
	if v := f.check(t, 2); !v.Open {
		t.Fatalf("the pod that is down itself may go: %+v", v)
	}
}

func TestGateRefusesALedgerEntryItCannotRead(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := f.gate.Reader.Get(ctx, client.ObjectKey{Namespace: "fixity-system", Name: ledgerName(f.owner.UID)}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data[ledgerReadyBefore] = "many"
	if err := f.gate.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	restarted := &Gate{Client: f.gate.Client, Reader: f.gate.Reader, Namespace: f.gate.Namespace, Clock: f.clock}
	if _, err := restarted.Check(ctx, f.owner, &f.pods[1], f.pods); err == nil || !strings.Contains(err.Error(), "data readyBefore") {
		t.Fatalf("a broken ledger entry: %v, want an error naming the field", err)
	}
}

func TestReadOwner(t *testing.T) {
	ctx := context.Background()
	rs := builders.ReplicaSet("shop", "web-abc", 3, 3)
	c := fake.NewClientBuilder().WithObjects(rs).Build()
	for name, tc := range map[string]struct {
		ref   metav1.OwnerReference
		nil   bool
		known bool
	}{
		"ReplicaSet":                  {metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID}, false, true},
		"gone":                        {metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "other", UID: "x"}, true, false},
		"another under the name":      {metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: "old"}, true, false},
		"a kind Fixity does not know": {metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "web", UID: "r"}, false, false},
	} {
		o, err := ReadOwner(ctx, c, "shop", &tc.ref)
		if err != nil || (o == nil) != tc.nil || (o != nil && o.Known != tc.known) {
			t.Errorf("%s: ReadOwner = %+v, %v", name, o, err)
		}
	}
	if _, err := ReadOwner(ctx, c, "shop", &metav1.OwnerReference{APIVersion: "a/b/c", Kind: "X", Name: "x"}); err == nil {
		t.Error("a malformed apiVersion is an error")
	}
}

// An eviction whose ledger entry could not be written still holds the owner's next pod while the
// cache shows the evicted one Ready.
func TestGateRemembersAnEvictionItCouldNotRecord(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	broken := interceptor.NewClient(f.gate.Client.(client.WithWatch), interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return apierrors.NewInternalError(context.DeadlineExceeded)
		},
	})
	f.gate.Client = broken
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err == nil {
		t.Fatal("the ledger write was meant to fail")
	}
	if v := f.check(t, 1); v.Open {
		t.Fatalf("the next pod, with the evicted one still Ready in the cache: %+v", v)
	}
}

// A stuck owner is told once: the message does not change while it stays stuck.
func TestGateStuckMessageIsStable(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err != nil {
		t.Fatal(err)
	}
	f.pods, f.owner.Ready = f.pods[1:], 2
	f.clock.Step(2 * time.Minute)
	first := f.check(t, 0)
	f.clock.Step(time.Minute)
	if second := f.check(t, 0); !first.Stuck || second.Message != first.Message || first.RetryAfter != StuckWait {
		t.Fatalf("stuck twice: %+v then %+v", first, second)
	}
}

// A day-old entry says nothing about the owner now; the floor still holds.
func TestGateLedgerEntriesExpire(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, 3, 3)
	if err := f.gate.Record(ctx, f.owner, &f.pods[0], f.pods); err != nil {
		t.Fatal(err)
	}
	f.pods = f.pods[1:]
	f.clock.Step(25 * time.Hour)
	builders.NotReady(&f.pods[1]) // an unrelated pod is down now
	if v := f.check(t, 0); v.Open || v.Stuck {
		t.Fatalf("floor: %+v", v)
	}
	if e, err := f.gate.read(ctx, f.owner); e != nil || err != nil {
		t.Fatalf("a day-old entry was kept: %+v, %v", e, err)
	}
}
