package workload

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds are the workload kinds whose pod templates are validated, by group and kind.
var Kinds = []metav1.GroupKind{
	{Group: "apps", Kind: "Deployment"},
	{Group: "apps", Kind: "StatefulSet"},
	{Group: "apps", Kind: "DaemonSet"},
	{Group: "apps", Kind: "ReplicaSet"},
	{Group: "batch", Kind: "Job"},
	{Group: "batch", Kind: "CronJob"},
}

// PodTemplate decodes raw (a JSON object of the given kind) and returns its pod template.
// An unknown kind or undecodable object is an error naming the kind, so callers fail closed.
func PodTemplate(gk metav1.GroupKind, raw []byte) (*corev1.PodTemplateSpec, error) {
	switch gk {
	case metav1.GroupKind{Group: "apps", Kind: "Deployment"}:
		return template[appsv1.Deployment](gk, raw, func(o *appsv1.Deployment) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case metav1.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return template[appsv1.StatefulSet](gk, raw, func(o *appsv1.StatefulSet) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case metav1.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return template[appsv1.DaemonSet](gk, raw, func(o *appsv1.DaemonSet) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case metav1.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return template[appsv1.ReplicaSet](gk, raw, func(o *appsv1.ReplicaSet) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case metav1.GroupKind{Group: "batch", Kind: "Job"}:
		return template[batchv1.Job](gk, raw, func(o *batchv1.Job) *corev1.PodTemplateSpec { return &o.Spec.Template })
	case metav1.GroupKind{Group: "batch", Kind: "CronJob"}:
		return template[batchv1.CronJob](gk, raw, func(o *batchv1.CronJob) *corev1.PodTemplateSpec { return &o.Spec.JobTemplate.Spec.Template })
	}
	return nil, fmt.Errorf("kind %s is not a workload kind Fixity validates", gk)
}

func template[T any](gk metav1.GroupKind, raw []byte, get func(*T) *corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) {
	obj := new(T)
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", gk, err)
	}
	return get(obj), nil
}
