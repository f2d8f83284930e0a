package nodedrift

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// The provisioners' kinds, read as unstructured objects: importing Karpenter or Cluster API
// would pull their whole trees (and their own Kubernetes pins) for three fields.
var (
	NodeClaimKind = schema.GroupVersionKind{Group: "karpenter.sh", Version: "v1", Kind: "NodeClaim"}
	MachineKind   = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "Machine"}
)

// Provisioner is what provisions a node and is asked to replace it.
type Provisioner struct {
	// Kind is NodeClaimKind or MachineKind.
	Kind schema.GroupVersionKind
	// Object is the NodeClaim or Machine.
	Object *unstructured.Unstructured
}

func (p *Provisioner) String() string {
	if p.Object.GetNamespace() == "" {
		return p.Kind.Kind + " " + p.Object.GetName()
	}
	return p.Kind.Kind + " " + p.Object.GetNamespace() + "/" + p.Object.GetName()
}

// FindProvisioner finds node's Karpenter NodeClaim (by the Node's ownerReference, else by
// providerID or node name in its status) or, failing that, the Cluster API Machine whose
// status.nodeRef is the node (or whose spec.providerID is the node's). A kind whose CRD is not
// installed is simply absent. r should read from the API server: this runs once per drifted
// node, and a stale copy could hand the wrong machine over.
func FindProvisioner(ctx context.Context, r client.Reader, node *corev1.Node) (*Provisioner, error) {
	for _, ref := range node.OwnerReferences {
		if ref.Kind != NodeClaimKind.Kind || schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind).Group != NodeClaimKind.Group {
			continue
		}
		nc := &unstructured.Unstructured{}
		nc.SetGroupVersionKind(NodeClaimKind)
		err := r.Get(ctx, client.ObjectKey{Name: ref.Name}, nc)
		if err == nil && nc.GetUID() == ref.UID {
			return &Provisioner{Kind: NodeClaimKind, Object: nc}, nil
		}
		if err != nil && client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("reading NodeClaim %s of node %s: %w", ref.Name, node.Name, err)
		}
	}
	nc, err := findBy(ctx, r, NodeClaimKind, func(u *unstructured.Unstructured) bool {
		pid, _, _ := unstructured.NestedString(u.Object, "status", "providerID")
		name, _, _ := unstructured.NestedString(u.Object, "status", "nodeName")
		return (pid != "" && pid == node.Spec.ProviderID) || name == node.Name
	})
	if nc != nil || err != nil {
		return nc, err
	}
	// A management cluster may hold the Machines of many clusters, whose node names repeat: the
	// providerID decides, and a node name only when exactly one Machine has it.
	if node.Spec.ProviderID != "" {
		m, err := findBy(ctx, r, MachineKind, func(u *unstructured.Unstructured) bool {
			pid, _, _ := unstructured.NestedString(u.Object, "spec", "providerID")
			return pid == node.Spec.ProviderID
		})
		if m != nil || err != nil {
			return m, err
		}
	}
	var named []*Provisioner
	_, err = findBy(ctx, r, MachineKind, func(u *unstructured.Unstructured) bool {
		if ref, _, _ := unstructured.NestedString(u.Object, "status", "nodeRef", "name"); ref == node.Name {
			named = append(named, &Provisioner{Kind: MachineKind, Object: u.DeepCopy()})
		}
		return false
	})
	if err != nil || len(named) != 1 {
		return nil, err
	}
	return named[0], nil
}

// findBy lists every object of kind and returns the one match picks.
func findBy(ctx context.Context, r client.Reader, kind schema.GroupVersionKind, match func(*unstructured.Unstructured) bool) (*Provisioner, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(kind.GroupVersion().WithKind(kind.Kind + "List"))
	if err := r.List(ctx, list); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing %ss: %w", kind.Kind, err)
	}
	for i := range list.Items {
		if match(&list.Items[i]) {
			return &Provisioner{Kind: kind, Object: &list.Items[i]}, nil
		}
	}
	return nil, nil
}

// Cluster API's marks of a Machine it is updating in place (its own inplace.IsUpdateInProgress).
const (
	capiUpdateInProgressAnnotation = "in-place-updates.internal.cluster.x-k8s.io/update-in-progress"
	capiPendingHooksAnnotation     = "runtime.cluster.x-k8s.io/pending-hooks"
	capiUpdateMachineHook          = "UpdateMachine"
	capiUpdatingCondition          = "Updating"
)

// HandedOver reports whether the provisioner already has the node in hand (the NodeClaim is
// being deleted, the Machine is annotated or being deleted); when not, wait says why it must not
// be asked yet ("" when it may be).
func HandedOver(p *Provisioner) (done bool, wait string) {
	o := p.Object
	if !o.GetDeletionTimestamp().IsZero() {
		return true, ""
	}
	if p.Kind != MachineKind {
		return false, ""
	}
	if _, ok := o.GetAnnotations()[fixityv1.ClusterAPIRemediateMachineAnnotation]; ok {
		return true, ""
	}
	if updatingInPlace(o) {
		return false, p.String() + " is being updated in place by Cluster API; asked to replace the node once that is over"
	}
	return false, ""
}

// updatingInPlace reports whether Cluster API is updating the Machine in place.
func updatingInPlace(o *unstructured.Unstructured) bool {
	a := o.GetAnnotations()
	if _, ok := a[capiUpdateInProgressAnnotation]; ok {
		return true
	}
	if slices.Contains(strings.Split(a[capiPendingHooksAnnotation], ","), capiUpdateMachineHook) {
		return true
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == capiUpdatingCondition && m["status"] == "True" {
			return true
		}
	}
	return false
}

// HandOver asks the provisioner to replace the node: the NodeClaim is deleted (Karpenter taints,
// drains through the Eviction API and terminates the node, then brings a new one), the Machine
// gets cluster.x-k8s.io/remediate-machine (its MachineHealthCheck marks it and its owner
// replaces it). The Node object itself is never deleted: that would force-delete its pods
// without a drain and leave the machine running.
func HandOver(ctx context.Context, c client.Client, p *Provisioner) error {
	o := p.Object
	if p.Kind == NodeClaimKind {
		uid := o.GetUID()
		return client.IgnoreNotFound(c.Delete(ctx, o, client.Preconditions{UID: &uid}))
	}
	before := o.DeepCopy()
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[fixityv1.ClusterAPIRemediateMachineAnnotation] = ""
	o.SetAnnotations(a)
	return c.Patch(ctx, o, client.MergeFrom(before))
}
