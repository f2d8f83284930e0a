package drift

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/kubeletstats"
)

// layers is a WritableLayers answering from a map, or with err.
type layers struct {
	usage map[string]kubeletstats.Usage
	err   error
}

func (l layers) Usage(string, types.UID) (map[string]kubeletstats.Usage, error) {
	return l.usage, l.err
}

func TestWritableLayer(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1"},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app"}, {Name: "sidecar"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	policy := func(limit string) *fixityv1.ImmutabilityPolicy {
		p := &fixityv1.ImmutabilityPolicy{Spec: fixityv1.ImmutabilityPolicySpec{Drift: fixityv1.DriftRules{Checks: []fixityv1.DriftCheck{fixityv1.CheckWritableLayer}}}}
		if limit != "" {
			p.Spec.Drift.WritableLayerLimit = new(resource.MustParse(limit))
		}
		return p
	}
	for _, tc := range []struct {
		name      string
		stats     WritableLayers
		limit     string
		pending   bool
		want      []string
		undecided bool
	}{
		{name: "under the default limit", stats: layers{usage: map[string]kubeletstats.Usage{"app": {UsedBytes: 4096}}}},
		{name: "over it", stats: layers{usage: map[string]kubeletstats.Usage{"app": {UsedBytes: 4 << 20, InodesUsed: 2}, "sidecar": {UsedBytes: 8192}}},
			want: []string{`container "app" wrote 4194304 bytes (2 inodes) into its writable layer, outside its volumes: more than writableLayerLimit 1Mi`}},
		{name: "over a policy's own limit", limit: "4Ki", stats: layers{usage: map[string]kubeletstats.Usage{"sidecar": {UsedBytes: 8192}}},
			want: []string{`container "sidecar" wrote 8192 bytes`}},
		{name: "a kubelet that cannot be read", stats: layers{err: fmt.Errorf("%w: boom", kubeletstats.ErrNoReading)}, undecided: true},
		{name: "no stats reader", undecided: true},
		{name: "a pod not running yet", pending: true, stats: layers{err: errors.New("never asked")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Detector{}
			if tc.stats != nil {
				d.Stats = tc.stats
			}
			p := pod.DeepCopy()
			if tc.pending {
				p.Status.Phase = corev1.PodPending
			}
			fs, err := d.Detect(context.Background(), p, policy(tc.limit))
			var u *UndecidedError
			if tc.undecided != errors.As(err, &u) {
				t.Fatalf("err %v, want undecided %v", err, tc.undecided)
			}
			if len(fs) != len(tc.want) {
				t.Fatalf("findings %v, want %v", fs, tc.want)
			}
			for i, f := range fs {
				if f.Check != fixityv1.CheckWritableLayer || !strings.Contains(f.Message, tc.want[i]) || f.Kept {
					t.Errorf("finding %+v, want %q", f, tc.want[i])
				}
			}
		})
	}
}
