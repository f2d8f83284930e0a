package admitted

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Image is what was admitted for one container.
type Image struct {
	// Image is the reference the container runs, pinned by digest (repo@sha256:...).
	Image string `json:"image"`
	// Authorities are the "policy/authority" pairs whose signatures verified it; empty when no
	// policy required signatures.
	Authorities []string `json:"authorities,omitempty"`
	// Formats say, per authority, which signature format verified it: "bundle" (a sigstore
	// bundle, cosign v3) or "legacy" (the .sig tag, cosign v2).
	Formats map[string]string `json:"formats,omitempty"`
	// Attestations are the "policy/attestation" rules the image met.
	Attestations []string `json:"attestations,omitempty"`
}

// VolumePrefix starts the record key of an image volume, "volume/<name>": a slash is never in
// a container's name, so a volume and a container of the same name do not collide.
const VolumePrefix = "volume/"

// VolumeKey is the record key of the image volume named name.
func VolumeKey(name string) string { return VolumePrefix + name }

// VolumeName is the volume name of a record key, and whether the key is a volume's.
func VolumeName(key string) (string, bool) { return strings.CutPrefix(key, VolumePrefix) }

// PodImage is one image a pod runs or mounts: its record key (the container's name, or VolumeKey
// for an image volume), its reference, in the pod, so that a mutator can rewrite it, and the JSON
// pointer of that reference, so that a rewrite can be sent as a patch.
type PodImage struct {
	Key   string
	Image *string
	Path  string
}

// PodImages lists every image of pod in spec order: init containers, containers, ephemeral
// containers, then image volumes, which mount an image's content as surely as a container runs one.
func PodImages(pod *corev1.Pod) []PodImage {
	out := make([]PodImage, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+len(pod.Spec.EphemeralContainers))
	for i := range pod.Spec.InitContainers {
		out = append(out, PodImage{pod.Spec.InitContainers[i].Name, &pod.Spec.InitContainers[i].Image, "/spec/initContainers/" + strconv.Itoa(i) + "/image"})
	}
	for i := range pod.Spec.Containers {
		out = append(out, PodImage{pod.Spec.Containers[i].Name, &pod.Spec.Containers[i].Image, "/spec/containers/" + strconv.Itoa(i) + "/image"})
	}
	for i := range pod.Spec.EphemeralContainers {
		out = append(out, PodImage{pod.Spec.EphemeralContainers[i].Name, &pod.Spec.EphemeralContainers[i].Image, "/spec/ephemeralContainers/" + strconv.Itoa(i) + "/image"})
	}
	for i := range pod.Spec.Volumes {
		if v := pod.Spec.Volumes[i].Image; v != nil && v.Reference != "" {
			out = append(out, PodImage{VolumeKey(pod.Spec.Volumes[i].Name), &v.Reference, "/spec/volumes/" + strconv.Itoa(i) + "/image/reference"})
		}
	}
	return out
}

// Verified is the fixity.dev/verified record: per container name (or VolumeKey of an image
// volume), the admitted image.
type Verified map[string]Image

// Encode returns the annotation value.
func (v Verified) Encode() (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding the %s record: %w", fixityv1.VerifiedAnnotation, err)
	}
	return string(b), nil
}

// ReadVerified returns the verified record of pod and whether it has one. A record that does
// not parse is an error: the annotation is the operator's, so a bad one means tampering or a bug.
func ReadVerified(pod *corev1.Pod) (Verified, bool, error) {
	s, ok := pod.Annotations[fixityv1.VerifiedAnnotation]
	if !ok {
		return nil, false, nil
	}
	v := Verified{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, true, fmt.Errorf("pod %s/%s: annotation %s: %w", pod.Namespace, pod.Name, fixityv1.VerifiedAnnotation, err)
	}
	return v, true, nil
}

// hashedContainer is the part of a container that must not change after admission.
type hashedContainer struct {
	Name            string                  `json:"name"`
	Image           string                  `json:"image"`
	Command         []string                `json:"command,omitempty"`
	Args            []string                `json:"args,omitempty"`
	Env             []corev1.EnvVar         `json:"env,omitempty"`
	EnvFrom         []corev1.EnvFromSource  `json:"envFrom,omitempty"`
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}

// SpecHash is the fixity.dev/spec-hash of pod: a SHA-256 over the images, commands, args,
// environment and security contexts of its init and regular containers, in order, and the pod's
// security context. Ephemeral containers are left out: adding one is its own drift check.
func SpecHash(pod *corev1.Pod) (string, error) {
	in := struct {
		Init            []hashedContainer          `json:"init,omitempty"`
		Containers      []hashedContainer          `json:"containers"`
		SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`
	}{SecurityContext: pod.Spec.SecurityContext}
	for _, c := range pod.Spec.InitContainers {
		in.Init = append(in.Init, hashed(c))
	}
	for _, c := range pod.Spec.Containers {
		in.Containers = append(in.Containers, hashed(c))
	}
	b, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("encoding the pod spec for %s: %w", fixityv1.SpecHashAnnotation, err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func hashed(c corev1.Container) hashedContainer {
	return hashedContainer{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args, Env: c.Env, EnvFrom: c.EnvFrom, SecurityContext: c.SecurityContext}
}
