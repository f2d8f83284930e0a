package podconfig

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Record is the fixity.dev/config annotation: the key's ID, and per "Kind/name" (in the pod's
// namespace) the hash of its data when the pod was admitted.
type Record struct {
	Key     string            `json:"key"`
	Objects map[string]string `json:"objects"`
}

// Encode is the annotation's value (map keys sorted by encoding/json: stable).
func (r Record) Encode() string {
	b, _ := json.Marshal(r) // a struct of strings cannot fail to encode
	return string(b)
}

// ReadRecord reads a pod's record; ok is false when it has none.
func ReadRecord(pod *corev1.Pod) (r Record, ok bool, err error) {
	v, ok := pod.Annotations[fixityv1.ConfigAnnotation]
	if !ok {
		return Record{}, false, nil
	}
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return Record{}, true, fmt.Errorf("pod %s/%s: annotation %s: %w", pod.Namespace, pod.Name, fixityv1.ConfigAnnotation, err)
	}
	return r, true, nil
}

// Entry is one recorded object.
type Entry struct {
	Kind, Name, Hash string
}

// Entries are the record's objects, sorted; malformed keys are skipped.
func (r Record) Entries() []Entry {
	var out []Entry
	for _, k := range slices.Sorted(maps.Keys(r.Objects)) {
		kind, name, ok := strings.Cut(k, "/")
		if !ok || (kind != KindConfigMap && kind != KindSecret) || name == "" {
			continue
		}
		out = append(out, Entry{Kind: kind, Name: name, Hash: r.Objects[k]})
	}
	return out
}

// IndexValues are the pod's values of fixityv1.ConfigIndex: Kind/namespace/name of each
// recorded object.
func IndexValues(pod *corev1.Pod) []string {
	r, ok, err := ReadRecord(pod)
	if !ok || err != nil {
		return nil
	}
	var out []string
	for _, e := range r.Entries() {
		out = append(out, IndexValue(e.Kind, pod.Namespace, e.Name))
	}
	return out
}

// IndexValue is the fixityv1.ConfigIndex value of one object.
func IndexValue(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Describe is a finding's message for changed and deleted objects.
func Describe(e Entry, deleted bool) string {
	if deleted {
		return fmt.Sprintf("%s %q was deleted after the pod was admitted (reported, not replaced: a replacement could not start without it)", e.Kind, e.Name)
	}
	return fmt.Sprintf("%s %q changed after the pod was admitted (%s no longer matches)", e.Kind, e.Name, fixityv1.ConfigAnnotation)
}
