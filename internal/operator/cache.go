package operator

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fixity-dev/fixity/internal/podconfig"
)

// CacheOptions keeps the manager's informer cache lean: it holds every pod of the cluster, so
// each pod keeps only what the operator reads; code that needs a whole pod (recreating a bare
// pod) reads it from the API server. ConfigMaps are cached only in the operator's namespace,
// where its records are (saved specs, the replacement ledger); config.mutable's cache of every
// ConfigMap and Secret is its own (podconfig.NewCache) and keeps no data.
func CacheOptions(namespace string) cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:       {Transform: TrimPod},
			&corev1.Node{}:      {Transform: TrimNode},
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{namespace: {}}},
		},
	}
}

// lastApplied is kubectl's copy of the whole manifest, often the largest annotation.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// TrimPod drops from a cached pod what neither admission nor drift detection reads: managed
// fields, kubectl's last-applied copy, the contents of projected volumes (service account
// tokens; Pod Security judges their kind, not their sources; the ConfigMaps and Secrets
// config.mutable judges are kept), and the status beyond the phase,
// the Ready condition and each container's name, image, image ID and state.
func TrimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	pod.ManagedFields = nil
	delete(pod.Annotations, lastApplied)
	for i := range pod.Spec.Volumes {
		if p := pod.Spec.Volumes[i].Projected; p != nil {
			// config.mutable judges the ConfigMaps and Secrets a projected volume holds.
			p.Sources = slices.DeleteFunc(p.Sources, func(s corev1.VolumeProjection) bool {
				return s.Secret == nil && (s.ConfigMap == nil || s.ConfigMap.Name == podconfig.RootCA)
			})
		}
	}
	var ready []corev1.PodCondition
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = append(ready, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	pod.Status = corev1.PodStatus{
		Phase:                      pod.Status.Phase,
		Conditions:                 ready,
		InitContainerStatuses:      trimStatuses(pod.Status.InitContainerStatuses),
		ContainerStatuses:          trimStatuses(pod.Status.ContainerStatuses),
		EphemeralContainerStatuses: trimStatuses(pod.Status.EphemeralContainerStatuses),
	}
	return pod, nil
}

// TrimNode drops from a cached node what node drift does not read: managed fields, the images
// the node holds (often the largest part of a Node), attached volumes, and conditions other
// than Ready.
func TrimNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	node.ManagedFields = nil
	delete(node.Annotations, lastApplied)
	var ready []corev1.NodeCondition
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = append(ready, corev1.NodeCondition{Type: c.Type, Status: c.Status})
		}
	}
	node.Status = corev1.NodeStatus{NodeInfo: node.Status.NodeInfo, Conditions: ready, Addresses: node.Status.Addresses,
		DaemonEndpoints: node.Status.DaemonEndpoints}
	return node, nil
}

func trimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, s := range in {
		state := corev1.ContainerState{}
		switch {
		case s.State.Running != nil:
			state.Running = &corev1.ContainerStateRunning{}
		case s.State.Terminated != nil:
			state.Terminated = &corev1.ContainerStateTerminated{ExitCode: s.State.Terminated.ExitCode}
		case s.State.Waiting != nil:
			state.Waiting = &corev1.ContainerStateWaiting{Reason: s.State.Waiting.Reason}
		}
		out[i] = corev1.ContainerStatus{Name: s.Name, Image: s.Image, ImageID: s.ImageID, Ready: s.Ready, State: state}
	}
	return out
}
