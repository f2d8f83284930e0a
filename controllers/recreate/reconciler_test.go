package recreate

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/remediation"
	"github.com/fixity-dev/fixity/test/builders"
)

const ns = "fixity-system"

func newReconciler(objs ...client.Object) (*Reconciler, client.Client) {
	p := builders.Policy("prod")
	p.UID = "p-uid"
	c := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(append(objs, p)...).WithStatusSubresource(p).Build()
	return &Reconciler{Client: c, APIReader: c, Ledger: &remediation.Ledger{Client: c, Reader: c, Namespace: ns},
		Events: events.NewFakeRecorder(8), Namespace: ns}, c
}

func saved(t *testing.T, pod *corev1.Pod) *corev1.ConfigMap {
	t.Helper()
	fresh, err := drift.AdmittedSpec(pod)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := drift.SaveSpec(ns, fresh, pod.UID, []string{"prod"})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// The saved spec is taken a step further each time: the drifted pod is deleted, then created
// again once gone, then the saved spec goes and the replacement is counted.
func TestRecreation(t *testing.T) {
	ctx := context.Background()
	old := builders.Pod("shop", "solo")
	cm := saved(t, old)
	r, c := newReconciler(old, cm)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cm)}

	if res, err := r.Reconcile(ctx, req); err != nil || res.RequeueAfter == 0 {
		t.Fatalf("first step: %+v, %v; want a wait while the pod goes", res, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(old), &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the drifted pod is deleted: %v", err)
	}
	if res, err := r.Reconcile(ctx, req); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("second step: %+v, %v", res, err)
	}
	back := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(old), back); err != nil || back.Spec.Containers[0].Image != builders.Image {
		t.Fatalf("recreated: %+v, %v", back.Spec, err)
	}
	if err := c.Get(ctx, req.NamespacedName, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the saved spec is removed once the pod is back: %v", err)
	}
	p := &fixityv1.ImmutabilityPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Name: "prod"}, p); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := remediation.Count(ctx, c, ns, p); err != nil || !ok || n != 1 {
		t.Fatalf("replacement counted: %d, %t, %v", n, ok, err)
	}
}

// A pod of another UID under the name means the recreation is done; a saved spec that does not
// hang together, or one outside the operator's namespace, never creates a pod.
func TestRecreationIsSafe(t *testing.T) {
	ctx := context.Background()
	t.Run("already back", func(t *testing.T) {
		old := builders.Pod("shop", "solo")
		cm := saved(t, old)
		back := builders.Pod("shop", "solo")
		back.UID = "new"
		r, c := newReconciler(back, cm)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cm)}); err != nil {
			t.Fatal(err)
		}
		got := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(back), got); err != nil || got.UID != "new" {
			t.Fatalf("the pod back under the name is left alone: %v, %v", got.UID, err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			t.Fatalf("saved spec dropped: %v", err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		cm := saved(t, builders.Pod("shop", "solo"))
		cm.Annotations[fixityv1.SavedPodAnnotation] = "kube-system/solo"
		r, c := newReconciler(cm)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cm)}); err != nil {
			t.Fatal(err)
		}
		for _, key := range []types.NamespacedName{{Namespace: "shop", Name: "solo"}, {Namespace: "kube-system", Name: "solo"}} {
			if err := c.Get(ctx, key, &corev1.Pod{}); !apierrors.IsNotFound(err) {
				t.Fatalf("a pod was created from a spec that does not hang together: %s, %v", key, err)
			}
		}
	})
	t.Run("outside the operator's namespace", func(t *testing.T) {
		cm := saved(t, builders.Pod("shop", "solo"))
		cm.Namespace = "shop"
		r, c := newReconciler(cm)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cm)}); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "solo"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a tenant's ConfigMap created a pod: %v", err)
		}
	})
}
