package patch

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Helper patches the status of one object relative to the snapshot taken by NewHelper.
//
// It is a deliberately small stand-in for cluster-api's util/patch and Flux's runtime/patch:
// both would pull a large dependency tree (and their own controller-runtime pins) for the one
// thing we need, a merge patch of status against a snapshot.
type Helper struct {
	client client.Client
	before client.Object
}

// NewHelper snapshots obj; call it right after reading obj.
func NewHelper(obj client.Object, c client.Client) *Helper {
	return &Helper{client: c, before: obj.DeepCopyObject().(client.Object)}
}

// PatchStatus sends the status difference between the snapshot and obj, if any: an unchanged
// status costs the API server nothing (no "{}" patch per reconcile).
func (h *Helper) PatchStatus(ctx context.Context, obj client.Object) error {
	p := client.MergeFrom(h.before)
	data, err := p.Data(obj)
	if err != nil {
		return fmt.Errorf("computing the status patch of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	if string(data) == "{}" {
		return nil
	}
	if err := h.client.Status().Patch(ctx, obj, client.RawPatch(p.Type(), data)); err != nil {
		return fmt.Errorf("patching status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// Generational is an object whose status records the generation it was computed for.
type Generational interface {
	client.Object
	SetObservedGeneration(int64)
}

// Finish ends a reconcile of obj, deferred with the reconcile's named error: it sets
// observedGeneration only when the reconcile succeeded (the status is this generation's
// verdict, not a failure that will be retried), then patches what changed. An object deleted
// meanwhile is not an error.
func (h *Helper) Finish(ctx context.Context, obj Generational, retErr *error) {
	if *retErr == nil {
		obj.SetObservedGeneration(obj.GetGeneration())
	}
	if err := h.PatchStatus(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		*retErr = errors.Join(*retErr, err)
	}
}
