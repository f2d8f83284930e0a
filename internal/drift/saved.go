package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
)

// A bare pod has no controller to bring it back, so before it is replaced its admitted spec is
// saved in a ConfigMap in the operator's namespace (tenants cannot write there, and the operator
// creates a pod from it as itself), named after the UID of the pod to delete: only that pod's
// going brings it back.
const savedKey = "pod.json"

// SavedName is the name of the ConfigMap holding the saved spec of the bare pod with this UID.
func SavedName(uid types.UID) string { return "fixity-recreate-" + string(uid) }

// AdmittedSpec is the pod as it was admitted, to be created afresh: each container's image is
// the one in its fixity.dev/verified record (an image changed in place does not come back), and
// so is each image volume's,
// the operator's annotations are dropped (admission writes them again for the new pod), and
// ephemeral containers and the node are left out.
func AdmittedSpec(pod *corev1.Pod) (*corev1.Pod, error) {
	rec, _, err := admitted.ReadVerified(pod)
	if err != nil {
		return nil, err
	}
	fresh := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: pod.Namespace, Name: pod.Name,
			Labels: pod.Labels,
			Annotations: maps.Collect(func(yield func(string, string) bool) {
				for k, v := range pod.Annotations {
					if !strings.HasPrefix(k, fixityv1.Prefix) && !yield(k, v) {
						return
					}
				}
			}),
		},
		Spec: *pod.Spec.DeepCopy(),
	}
	fresh.Spec.NodeName = ""
	fresh.Spec.EphemeralContainers = nil
	for _, im := range admitted.PodImages(fresh) {
		if e, ok := rec[im.Key]; ok && e.Image != "" {
			*im.Image = e.Image
		}
	}
	return fresh, nil
}

// SaveSpec returns the ConfigMap, in namespace, that saves fresh (from AdmittedSpec) for the
// pod with UID old, replaced by policies.
func SaveSpec(namespace string, fresh *corev1.Pod, old types.UID, policies []string) (*corev1.ConfigMap, error) {
	raw, err := json.Marshal(fresh)
	if err != nil {
		return nil, fmt.Errorf("saving pod %s/%s: %w", fresh.Namespace, fresh.Name, err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: SavedName(old),
			Labels: map[string]string{fixityv1.RecreateLabel: "true"},
			Annotations: map[string]string{
				fixityv1.SavedPoliciesAnnotation: strings.Join(policies, ","),
				fixityv1.SavedPodAnnotation:      client.ObjectKeyFromObject(fresh).String(),
				fixityv1.SavedUIDAnnotation:      string(old),
			},
		},
		Data: map[string]string{savedKey: string(raw)},
	}, nil
}

// Saved is a saved spec as read back.
type Saved struct {
	// Pod names the pod; Old is the UID of the pod it replaces.
	Pod      types.NamespacedName
	Old      types.UID
	Spec     *corev1.Pod
	Policies []string
}

// ReadSaved reads a saved spec; a ConfigMap that is not one, or does not hang together, is an
// error naming it and the field.
func ReadSaved(cm *corev1.ConfigMap) (*Saved, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("ConfigMap %s/%s: %s", cm.Namespace, cm.Name, fmt.Sprintf(format, args...))
	}
	ns, name, ok := strings.Cut(cm.Annotations[fixityv1.SavedPodAnnotation], "/")
	old := types.UID(cm.Annotations[fixityv1.SavedUIDAnnotation])
	if !ok || ns == "" || name == "" {
		return nil, bad("annotation %s: want namespace/name, got %q", fixityv1.SavedPodAnnotation, cm.Annotations[fixityv1.SavedPodAnnotation])
	}
	if old == "" || cm.Name != SavedName(old) {
		return nil, bad("annotation %s: %q does not match the name", fixityv1.SavedUIDAnnotation, old)
	}
	s := &Saved{Pod: types.NamespacedName{Namespace: ns, Name: name}, Old: old, Spec: &corev1.Pod{}}
	if err := json.Unmarshal([]byte(cm.Data[savedKey]), s.Spec); err != nil {
		return nil, bad("data %s: %v", savedKey, err)
	}
	if client.ObjectKeyFromObject(s.Spec) != s.Pod {
		return nil, bad("data %s is pod %s, not %s", savedKey, client.ObjectKeyFromObject(s.Spec), s.Pod)
	}
	// The operator creates the pod as itself, whose fixity.dev/* annotations admission keeps:
	// records in a saved spec are never taken, admission writes them afresh.
	maps.DeleteFunc(s.Spec.Annotations, func(k, _ string) bool { return strings.HasPrefix(k, fixityv1.Prefix) })
	for _, p := range strings.Split(cm.Annotations[fixityv1.SavedPoliciesAnnotation], ",") {
		if p != "" {
			s.Policies = append(s.Policies, p)
		}
	}
	return s, nil
}

// SaveForRecreation saves the admitted spec of bare pod cached (as the cache has it) in
// namespace, where the recreate controller finds it: that controller deletes the pod and
// creates it again once it is gone. The whole pod is read through r from the API server (the
// cache keeps a trimmed one); a pod gone, or another pod under the name, is left alone. why says
// what for, in the error.
func SaveForRecreation(ctx context.Context, r client.Reader, c client.Writer, namespace string, cached *corev1.Pod, policies []string, why string) error {
	pod := &corev1.Pod{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(cached), pod); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pod.UID != cached.UID || !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	fresh, err := AdmittedSpec(pod)
	if err != nil {
		return err
	}
	saved, err := SaveSpec(namespace, fresh, pod.UID, policies)
	if err != nil {
		return err
	}
	if err := c.Create(ctx, saved); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("saving pod %s/%s before %s: %w", pod.Namespace, pod.Name, why, err)
	}
	ctrl.LoggerFrom(ctx).Info("Saved a bare pod's admitted spec for recreation", "pod", klog.KObj(pod), "savedIn", klog.KObj(saved), "for", why)
	return nil
}
