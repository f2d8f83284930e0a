package remediation

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner is the controller of a pod, as far as replacing the pod is concerned: what it will
// create in the pod's place, and how many Ready pods it reports.
type Owner struct {
	Kind      string
	Namespace string
	Name      string
	UID       types.UID
	// Known is true for the kinds whose template and status are read: ReplicaSet,
	// StatefulSet, DaemonSet and Job. Other controllers' pods are judged by their pods alone.
	Known bool
	// Template is what the owner creates a replacement from (Known only).
	Template *corev1.PodTemplateSpec
	// Ready is the number of Ready pods the owner's status reports (Known only).
	Ready int32
	// Desired is how many pods the owner wants now (Known only).
	Desired int32
}

func (o *Owner) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// ReadOwner reads the controller ref of a pod in namespace ns from r (the API server: the
// decision to evict must not rest on a stale status). It returns nil when the owner is gone or
// is not the one the pod names (a new object under the old name).
func ReadOwner(ctx context.Context, r client.Reader, ns string, ref *metav1.OwnerReference) (*Owner, error) {
	o := &Owner{Kind: ref.Kind, Namespace: ns, Name: ref.Name, UID: ref.UID}
	var obj client.Object
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("pod owner %s %s: %w", ref.Kind, ref.Name, err)
	}
	switch {
	case gv.Group == "apps" && ref.Kind == "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	case gv.Group == "apps" && ref.Kind == "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case gv.Group == "apps" && ref.Kind == "DaemonSet":
		obj = &appsv1.DaemonSet{}
	case gv.Group == "batch" && ref.Kind == "Job":
		obj = &batchv1.Job{}
	default:
		return o, nil
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", o, err)
	}
	if obj.GetUID() != ref.UID {
		return nil, nil
	}
	o.Known = true
	switch w := obj.(type) {
	case *appsv1.ReplicaSet:
		o.Template, o.Ready, o.Desired = &w.Spec.Template, w.Status.ReadyReplicas, ptr.Deref(w.Spec.Replicas, 1)
	case *appsv1.StatefulSet:
		o.Template, o.Ready, o.Desired = &w.Spec.Template, w.Status.ReadyReplicas, ptr.Deref(w.Spec.Replicas, 1)
	case *appsv1.DaemonSet:
		o.Template, o.Ready, o.Desired = &w.Spec.Template, w.Status.NumberReady, w.Status.DesiredNumberScheduled
	case *batchv1.Job:
		o.Template, o.Ready, o.Desired = &w.Spec.Template, ptr.Deref(w.Status.Ready, 0), ptr.Deref(w.Spec.Parallelism, 1)
	}
	return o, nil
}

// PodReady reports whether pod is Ready and not terminating.
func PodReady(pod *corev1.Pod) bool {
	if !pod.DeletionTimestamp.IsZero() {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
