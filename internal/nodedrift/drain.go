package nodedrift

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Plan is what draining a node takes, from the pods on it now.
type Plan struct {
	// Evict are the pods to evict through the Eviction API: their owners replace them.
	Evict []*corev1.Pod
	// Recreate are bare pods Fixity itself recreates elsewhere.
	Recreate []*corev1.Pod
	// Blocked says, per pod that must leave but may not be evicted by Fixity, why.
	Blocked []string
	// Leaving is how many pods are still on the node that must leave, those already being
	// deleted included: the drain is done when it is 0.
	Leaving int
}

// Stays reports why pod stays on a drained node ("" if it must leave): DaemonSet pods (their
// controller tolerates the cordon and would put them back), mirror pods (the kubelet's own), and
// pods that have finished.
func Stays(pod *corev1.Pod) string {
	switch {
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return "finished"
	case pod.Annotations[corev1.MirrorPodAnnotationKey] != "":
		return "mirror pod"
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == "DaemonSet" {
		return "DaemonSet pod"
	}
	return ""
}

// PlanDrain sorts the pods of a node. recreates says whether Fixity recreates a bare pod (it
// has an admitted spec and a pod policy that replaces it); any other bare pod blocks the drain,
// for evicting it would lose it.
func PlanDrain(pods []corev1.Pod, recreates func(*corev1.Pod) bool) Plan {
	var p Plan
	for i := range pods {
		pod := &pods[i]
		if Stays(pod) != "" {
			continue
		}
		p.Leaving++
		if !pod.DeletionTimestamp.IsZero() {
			continue // going
		}
		switch {
		case pod.Annotations[fixityv1.KarpenterDoNotDisruptAnnotation] == "true":
			p.Blocked = append(p.Blocked, fmt.Sprintf("pod %s/%s has %s=true", pod.Namespace, pod.Name, fixityv1.KarpenterDoNotDisruptAnnotation))
		case metav1.GetControllerOfNoCopy(pod) != nil:
			p.Evict = append(p.Evict, pod)
		case recreates(pod):
			p.Recreate = append(p.Recreate, pod)
		default:
			p.Blocked = append(p.Blocked, fmt.Sprintf("pod %s/%s has no owner to replace it and no policy of Fixity's recreates it: move or delete it", pod.Namespace, pod.Name))
		}
	}
	return p
}
