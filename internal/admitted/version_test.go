package admitted

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	clocktesting "k8s.io/utils/clock/testing"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// server is an API server whose version the test sets, counting the questions.
type server struct {
	minor string
	err   error
	asked int
}

func (s *server) ServerVersion() (*version.Info, error) {
	s.asked++
	return &version.Info{Major: "1", Minor: s.minor}, s.err
}

func TestStamp(t *testing.T) {
	s := Stamp{Records: 2, Kubernetes: "1.37"}
	got, err := ParseStamp(s.String())
	if err != nil || got != s {
		t.Fatalf("ParseStamp(%q) = %+v, %v", s.String(), got, err)
	}
	for _, bad := range []string{"", "2;kubernetes=1.37", "v2", "vx;kubernetes=1.37", "v2;kubernetes="} {
		if _, err := ParseStamp(bad); err == nil {
			t.Errorf("ParseStamp(%q) accepted", bad)
		}
	}
	if StampOf(&corev1.Pod{}) != (Stamp{}) {
		t.Error("a pod without a stamp has the zero stamp")
	}
}

func TestVersionsAsksAtMostOncePerMinute(t *testing.T) {
	ctx := context.Background()
	srv := &server{minor: "37+"}
	clock := clocktesting.NewFakeClock(time.Now())
	v := &Versions{Server: srv, Clock: clock}
	for range 3 {
		s, err := v.Current(ctx, false)
		if err != nil || s != (Stamp{Records: RecordsVersion, Kubernetes: "1.37"}) {
			t.Fatalf("Current = %+v, %v", s, err)
		}
	}
	if srv.asked != 1 {
		t.Errorf("asked %d times within the minute", srv.asked)
	}
	srv.minor = "38"
	if s, _ := v.Current(ctx, true); s.Kubernetes != "1.38" || srv.asked != 2 {
		t.Errorf("fresh: %+v after %d questions", s, srv.asked)
	}
	clock.Step(2 * time.Minute)
	srv.err = errors.New("connection refused")
	if _, err := v.Current(ctx, false); err == nil {
		t.Error("an API server that cannot answer is an error, not a guess")
	}
}

func TestRestamp(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{fixityv1.SpecHashAnnotation: "sha256:old"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "shop/web@sha256:1"}}},
	}
	now := Stamp{Records: RecordsVersion, Kubernetes: "1.37"}
	changed, err := Restamp(pod, now)
	if err != nil || !changed {
		t.Fatalf("Restamp = %t, %v", changed, err)
	}
	want, _ := SpecHash(pod)
	if pod.Annotations[fixityv1.SpecHashAnnotation] != want || StampOf(pod) != now {
		t.Fatalf("records after Restamp: %v", pod.Annotations)
	}
	if changed, _ := Restamp(pod, now); changed {
		t.Error("stamping a current record again changes nothing")
	}
}
