package drift

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/version"
	clocktesting "k8s.io/utils/clock/testing"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/test/builders"
)

type apiServer struct{ minor string }

func (s *apiServer) ServerVersion() (*version.Info, error) {
	return &version.Info{Major: "1", Minor: s.minor}, nil
}

// A spec hash that no longer matches is SpecChange only when it was taken under the current
// records and Kubernetes versions; otherwise it is stamped again, never taken for drift.
func TestSpecChangeOnlyUnderTheCurrentVersion(t *testing.T) {
	ctx := context.Background()
	current := admitted.Stamp{Records: admitted.RecordsVersion, Kubernetes: "1.37"}
	admittedPod := func(stamp string) *corev1.Pod {
		p := builders.Pod("shop", "web")
		hash, err := admitted.SpecHash(p)
		if err != nil {
			t.Fatal(err)
		}
		builders.Annotated(fixityv1.SpecHashAnnotation, hash)(p)
		if stamp != "" {
			builders.Annotated(fixityv1.RecordVersionAnnotation, stamp)(p)
		}
		return p
	}
	// As a Kubernetes upgrade defaulting a new field would: the spec now hashes differently.
	defaulted := func(p *corev1.Pod) {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: ptrTo(corev1.DefaultProcMount)}
	}
	for _, tc := range []struct {
		name    string
		stamp   string
		change  func(*corev1.Pod)
		upgrade bool // the API server moves to 1.38 after the cache was filled
		drift   bool
	}{
		{"unchanged", current.String(), nil, false, false},
		{"changed under the current version", current.String(), defaulted, false, true},
		{"a record from before records were versioned", "", defaulted, false, false},
		{"a record from an older Kubernetes", "v2;kubernetes=1.36", defaulted, false, false},
		{"a record of an older records version", "v1;kubernetes=1.37", defaulted, false, false},
		{"the API server was upgraded within the minute", current.String(), defaulted, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &apiServer{minor: "37"}
			d := &Detector{Versions: &admitted.Versions{Server: srv, Clock: clocktesting.NewFakeClock(time.Now())}}
			if _, err := d.Versions.Current(ctx, false); err != nil {
				t.Fatal(err)
			}
			if tc.upgrade {
				srv.minor = "38"
			}
			pod := admittedPod(tc.stamp)
			if tc.change != nil {
				tc.change(pod)
			}
			fs, err := d.specChange(ctx, pod)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(fs) > 0; got != tc.drift {
				t.Fatalf("drift = %t (%v), want %t", got, fs, tc.drift)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
