package accessgrant

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/operator"
)

// The phase and the requeue come from one reading of the clock: an Active grant is always
// looked at again after a positive wait, exactly when it ends, and then it is Expired.
func TestExpiryReadsTheClockOnce(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	g := &fixityv1.AccessGrant{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "inc-1", Generation: 1, CreationTimestamp: metav1.NewTime(created),
			Annotations: map[string]string{fixityv1.RequesterAnnotation: "alice"},
		},
		Spec: fixityv1.AccessGrantSpec{Pods: []string{"web"}, Access: []fixityv1.AccessKind{fixityv1.AccessExec},
			Duration: &metav1.Duration{Duration: 15 * time.Minute}, Reason: "INC-1"},
	}
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(g).WithStatusSubresource(g).Build()
	clock := clocktesting.NewFakeClock(created.Add(15*time.Minute - time.Nanosecond))
	r := &Reconciler{Client: c, Events: events.NewFakeRecorder(8), Clock: clock}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(g)}

	res, err := r.Reconcile(ctx, req)
	if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > time.Millisecond {
		t.Fatalf("a nanosecond before the end: %+v, %v; want a positive wait of at most 1ms", res, err)
	}
	got := &fixityv1.AccessGrant{}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil || got.Status.Phase != fixityv1.GrantActive || got.Status.ObservedGeneration != 1 {
		t.Fatalf("status = %+v, %v", got.Status, err)
	}
	clock.Step(time.Nanosecond)
	if res, err := r.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("at the end: %+v, %v", res, err)
	}
	if err := c.Get(ctx, req.NamespacedName, got); err != nil || got.Status.Phase != fixityv1.GrantExpired {
		t.Fatalf("status = %+v, %v", got.Status, err)
	}
}
