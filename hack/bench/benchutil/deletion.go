package benchutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TimeToDeletion watches pod, makes change (what should get it replaced), and times from the
// change until the pod is being deleted, for at most a minute.
func TimeToDeletion(ctx context.Context, k8s client.WithWatch, pod *corev1.Pod, change func() error) (time.Duration, error) {
	w, err := k8s.Watch(ctx, &corev1.PodList{}, client.InNamespace(pod.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", pod.Name)})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	t0 := time.Now()
	if err := change(); err != nil {
		return 0, err
	}
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, errors.New("watch closed")
			}
			if p, ok := ev.Object.(*corev1.Pod); ok && (p.DeletionTimestamp != nil || ev.Type == "DELETED") {
				return time.Since(t0), nil
			}
		case <-timeout:
			return 0, fmt.Errorf("pod %s/%s was not deleted within a minute of the change", pod.Namespace, pod.Name)
		}
	}
}
