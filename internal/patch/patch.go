package patch

import (
	"context"
	"fmt"

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
