package operator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimPodKeepsWhatTheOperatorReads(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Labels: map[string]string{"app": "web"},
			Annotations:   map[string]string{"fixity.dev/spec-hash": "sha256:1", lastApplied: "{...}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "shop/web@sha256:1"}},
			Volumes: []corev1.Volume{
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}},
				}}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
			},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: "True"}, {Type: corev1.PodReady, Status: "True", Message: "x"}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "web", Image: "shop/web@sha256:1", ImageID: "shop/web@sha256:1", Ready: true,
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}},
			}},
		},
	}
	out, err := TrimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*corev1.Pod)
	switch {
	case p.ManagedFields != nil, p.Annotations[lastApplied] != "", p.Status.PodIP != "":
		t.Errorf("not trimmed: %+v", p)
	case p.Annotations["fixity.dev/spec-hash"] != "sha256:1", p.Labels["app"] != "web":
		t.Error("labels or the operator's annotations were lost")
	case p.Spec.Volumes[1].HostPath == nil, p.Spec.Volumes[0].Projected == nil, p.Spec.Containers[0].Image != "shop/web@sha256:1":
		t.Error("the spec Pod Security and drift read was lost")
	case len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Type != corev1.PodReady || p.Status.Conditions[0].Status != "True":
		t.Errorf("conditions = %+v", p.Status.Conditions)
	case p.Status.ContainerStatuses[0].ImageID != "shop/web@sha256:1" || p.Status.ContainerStatuses[0].State.Running == nil:
		t.Errorf("container statuses = %+v", p.Status.ContainerStatuses)
	case len(p.Spec.Volumes[0].Projected.Sources) != 1 || p.Spec.Volumes[0].Projected.Sources[0].ConfigMap.Name != "app-config":
		t.Errorf("projected sources = %+v, want only the workload's ConfigMap (config.mutable reads it)", p.Spec.Volumes[0].Projected.Sources)
	case p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil:
		t.Error("last termination state kept")
	}
	if other, _ := TrimPod("not a pod"); other != "not a pod" {
		t.Error("other objects must pass through")
	}
}
