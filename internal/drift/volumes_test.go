package drift

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/test/registry"
)

// An image volume whose mounted image (status.containerStatuses[].volumeMounts[].volumeStatus)
// is not the admitted one is ImageDigest drift; the admitted one, or no status yet, is not.
func TestImageDigestCoversImageVolumes(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	admittedImage, err := reg.PushRandomImage(ctx, "shop/models", "v1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := reg.PushRandomImage(ctx, "shop/models", "v2")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDetector(nil, nil, nil, &images.Registry{}, &images.Keychains{})
	pod := func(mounted string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: admittedImage.String()}}}}
		p.Spec.Containers = []corev1.Container{{Name: "web", Image: admittedImage.String()}}
		st := corev1.ContainerStatus{Name: "web", ImageID: admittedImage.String(), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
		if mounted != "" {
			st.VolumeMounts = []corev1.VolumeMountStatus{{Name: "models", MountPath: "/models",
				VolumeStatus: &corev1.VolumeStatus{Image: &corev1.ImageVolumeStatus{ImageRef: mounted}}}}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		return p
	}
	for _, tc := range []struct {
		name, mounted, want string
	}{
		{"no status yet", "", ""},
		{"the admitted image", admittedImage.String(), ""},
		{"another image", other.String(), `image volume "models" mounts ` + other.DigestStr() + ", not the admitted " + admittedImage.DigestStr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.imageDigest(ctx, pod(tc.mounted))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("findings %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Check != fixityv1.CheckImageDigest || !strings.Contains(got[0].Message, tc.want) {
				t.Fatalf("findings %v, want one ImageDigest finding %q", got, tc.want)
			}
		})
	}
}
