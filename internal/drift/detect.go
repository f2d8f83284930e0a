package drift

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/kubeletstats"
	"github.com/fixity-dev/fixity/internal/podconfig"
)

// Finding is one drift check that a pod fails.
type Finding struct {
	Check   fixityv1.DriftCheck
	Message string
	// Kept means the finding is reported but never replaces the pod (a ConfigMap or Secret
	// deleted under it: a replacement could not start).
	Kept bool
}

// Replaceable reports whether findings hold one that replaces the pod.
func Replaceable(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return !f.Kept })
}

// Inferred reports whether findings hold one the circuit breaker counts: anything but a
// ConfigChange, which is a recorded fact (the user changed the object), not an inference that
// a broken detector or a registry outage could make of many pods at once.
func Inferred(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Check != fixityv1.CheckConfigChange })
}

func (f Finding) String() string { return string(f.Check) + ": " + f.Message }

// UndecidedError means a check could not decide (a registry that cannot be reached): the pod is
// neither drifted nor clean yet, and is looked at again later.
type UndecidedError struct{ Reason string }

func (e *UndecidedError) Error() string { return "drift cannot be decided yet: " + e.Reason }

// Detector runs the drift checks.
type Detector struct {
	// Reader reads AccessGrants (the manager's cache).
	Reader client.Reader
	// Images re-verifies images under the current policy (Unverified).
	Images *images.Images
	// Checks are all the admission checks, run on a pod Fixity did not admit (Unverified).
	Checks []admit.Check
	// Registry and Keychains look up multi-arch indexes (ImageDigest).
	Registry  *images.Registry
	Keychains *images.Keychains
	// Versions tells the current records version: a spec hash of another version is no
	// evidence of drift.
	Versions *admitted.Versions
	// Clock tells whether grants are still active; nil means the real clock.
	Clock clock.PassiveClock
	// Grants tells whether a grant is still active (its approvals counted); nil means a Finder
	// on Reader and Clock that knows no policy asking for approvals.
	Grants *grants.Finder
	// Config reads the ConfigMaps and Secrets pods recorded (ConfigChange); nil skips the check.
	Config *podconfig.Store
	// Stats tells what containers wrote into their writable layers (WritableLayer); nil leaves
	// that check undecided.
	Stats WritableLayers

	indexes *cache.LRUExpireCache
}

// WritableLayers tells, from the kubelet's stats, what the containers of a pod wrote into
// their writable layers; an error means nothing current is known.
type WritableLayers interface {
	Usage(node string, uid types.UID) (map[string]kubeletstats.Usage, error)
}

// WritableLayerLimit is p's writableLayerLimit (1Mi when unset).
func WritableLayerLimit(p *fixityv1.ImmutabilityPolicy) resource.Quantity {
	if p.Spec.Drift.WritableLayerLimit != nil {
		return *p.Spec.Drift.WritableLayerLimit
	}
	return resource.MustParse("1Mi")
}

// NewDetector returns a Detector.
func NewDetector(r client.Reader, im *images.Images, checks []admit.Check, reg *images.Registry, kc *images.Keychains) *Detector {
	return &Detector{Reader: r, Images: im, Checks: checks, Registry: reg, Keychains: kc, indexes: cache.NewLRUExpireCache(4096)}
}

// Enabled returns the checks p runs (the default six when the list is empty).
func Enabled(p *fixityv1.ImmutabilityPolicy) []fixityv1.DriftCheck {
	if len(p.Spec.Drift.Checks) == 0 {
		return fixityv1.DefaultDriftChecks
	}
	return p.Spec.Drift.Checks
}

// Detect runs p's enabled checks on pod.
func (d *Detector) Detect(ctx context.Context, pod *corev1.Pod, p *fixityv1.ImmutabilityPolicy) ([]Finding, error) {
	var out []Finding
	var undecided []string
	for _, check := range Enabled(p) {
		var (
			fs  []Finding
			err error
		)
		switch check {
		case fixityv1.CheckImageDigest:
			fs, err = d.imageDigest(ctx, pod)
		case fixityv1.CheckEphemeralContainers:
			fs, err = d.ephemeralContainers(ctx, pod)
		case fixityv1.CheckInteractiveAccess:
			fs, err = d.interactiveAccess(ctx, pod)
		case fixityv1.CheckSpecChange:
			fs, err = d.specChange(ctx, pod)
		case fixityv1.CheckUnverified:
			fs, err = d.unverified(ctx, pod, p)
		case fixityv1.CheckConfigChange:
			fs, err = d.configChange(ctx, pod, p)
		case fixityv1.CheckWritableLayer:
			fs, err = d.writableLayer(pod, p)
		}
		if err != nil {
			undecided = append(undecided, fmt.Sprintf("%s: %v", check, err))
			continue
		}
		out = append(out, fs...)
	}
	if len(undecided) > 0 {
		return out, &UndecidedError{Reason: strings.Join(undecided, "; ")}
	}
	return out, nil
}

// admittedDigests returns, per container name, the digest admitted: from the verified record,
// else from a digest-pinned image in the spec.
func admittedDigests(pod *corev1.Pod) (map[string]name.Digest, error) {
	out := map[string]name.Digest{}
	rec, _, err := admitted.ReadVerified(pod)
	if err != nil {
		return nil, err
	}
	for _, im := range admitted.PodImages(pod) {
		image := *im.Image
		if e, ok := rec[im.Key]; ok {
			image = e.Image
		}
		ref, err := images.Parse(image)
		if err != nil {
			continue
		}
		if dg, ok := images.Pinned(ref); ok {
			out[im.Key] = dg
		}
	}
	return out, nil
}

// RunningDigest returns the manifest digest a container status reports, as runtimes write it:
// "repo@sha256:...", with or without a "docker-pullable://" prefix, under whatever repository
// name. An image ID that is not a manifest digest (Docker's "sha256:<config>") gives false.
func RunningDigest(imageID string) (string, bool) {
	_, after, ok := strings.Cut(imageID, "@")
	if !ok || !strings.HasPrefix(after, "sha256:") || len(after) != len("sha256:")+64 {
		return "", false
	}
	return after, true
}

// running is one image the kubelet reports a pod runs or mounts: the record key it is admitted
// under, what to call it in a finding, and the reported reference.
type running struct{ key, what, imageRef string }

// runningImages are what the kubelet reports: each container that has started, and each image
// volume each container mounts (ImageVolumeWithDigest).
func runningImages(pod *corev1.Pod) []running {
	var out []running
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, st := range statuses {
		// A container still pulling has no image ID that means anything yet.
		if st.State.Running != nil || st.State.Terminated != nil {
			out = append(out, running{st.Name, fmt.Sprintf("container %q runs", st.Name), st.ImageID})
		}
		for _, m := range st.VolumeMounts {
			if m.VolumeStatus == nil || m.VolumeStatus.Image == nil {
				continue
			}
			out = append(out, running{admitted.VolumeKey(m.Name), fmt.Sprintf("image volume %q mounts", m.Name), m.VolumeStatus.Image.ImageRef})
		}
	}
	return out
}

func (d *Detector) imageDigest(ctx context.Context, pod *corev1.Pod) ([]Finding, error) {
	want, err := admittedDigests(pod)
	if err != nil {
		return nil, err
	}
	var out []Finding
	looked := map[string]bool{} // a volume every container mounting it reports: looked at once
	for _, r := range runningImages(pod) {
		adm, ok := want[r.key]
		if !ok {
			continue
		}
		digest, ok := RunningDigest(r.imageRef)
		if !ok || digest == adm.DigestStr() || looked[r.key] {
			continue
		}
		looked[r.key] = true
		same, err := d.sameImage(ctx, pod, adm, digest)
		if err != nil {
			return nil, err
		}
		if !same {
			out = append(out, Finding{Check: fixityv1.CheckImageDigest, Message: fmt.Sprintf("%s %s, not the admitted %s", r.what, digest, adm.DigestStr())})
		}
	}
	return out, nil
}

// sameImage reports whether running is the admitted image after all: a platform manifest of
// the admitted multi-arch index, or the index of an admitted platform manifest. The answer is
// cached: manifests are immutable.
func (d *Detector) sameImage(ctx context.Context, pod *corev1.Pod, adm name.Digest, running string) (bool, error) {
	key := adm.String() + "|" + running
	if v, ok := d.indexes.Get(key); ok {
		return v.(bool), nil
	}
	kc := d.Keychains.ForPod(ctx, pod)
	children := func(dg name.Digest) ([]string, error) {
		desc, err := remote.Get(dg, d.Registry.Options(ctx, kc)...)
		if err != nil {
			return nil, images.Explain(dg.Context().RegistryStr(), err)
		}
		if !desc.MediaType.IsIndex() {
			return nil, nil
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range m.Manifests {
			out = append(out, c.Digest.String())
		}
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, images.DefaultTimeout)
	defer cancel()
	kids, err := children(adm)
	if err != nil {
		return false, err
	}
	same := slices.Contains(kids, running)
	if !same {
		// The runtime may report the index while the admitted digest is one of its platforms.
		// A registry that does not know the running digest at all says it is another image; a
		// registry that cannot answer decides nothing (no eviction on a network error).
		other, err := images.WithDigest(adm, running)
		if err != nil {
			return false, err
		}
		kids, err := children(other)
		switch {
		case err == nil:
			same = slices.Contains(kids, adm.DigestStr())
		case !images.IsNotFound(err):
			return false, err
		}
	}
	d.indexes.Add(key, same, time.Hour)
	return same, nil
}

// writableLayer finds the containers that wrote more than the limit outside their volumes. A pod
// the kubelet's stats say nothing current about is undecided, never drifted.
func (d *Detector) writableLayer(pod *corev1.Pod, p *fixityv1.ImmutabilityPolicy) ([]Finding, error) {
	if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning {
		return nil, nil // nothing runs yet, or any more
	}
	if d.Stats == nil {
		return nil, errors.New("no kubelet stats reader")
	}
	usage, err := d.Stats.Usage(pod.Spec.NodeName, pod.UID)
	if err != nil {
		return nil, err
	}
	limit := WritableLayerLimit(p)
	var out []Finding
	for _, c := range pod.Spec.Containers {
		u, ok := usage[c.Name]
		if !ok || u.UsedBytes <= uint64(max(limit.Value(), 0)) {
			continue
		}
		out = append(out, Finding{Check: fixityv1.CheckWritableLayer, Message: fmt.Sprintf(
			"container %q wrote %d bytes (%d inodes) into its writable layer, outside its volumes: more than writableLayerLimit %s",
			c.Name, u.UsedBytes, u.InodesUsed, limit.String())})
	}
	return out, nil
}

func (d *Detector) ephemeralContainers(ctx context.Context, pod *corev1.Pod) ([]Finding, error) {
	if len(pod.Spec.EphemeralContainers) == 0 {
		return nil, nil
	}
	// A debug session under a grant that is still running is let be; when the grant ends the
	// taint it left replaces the pod (InteractiveAccess).
	if active, err := d.taintGrantActive(ctx, pod); err != nil || active {
		return nil, err
	}
	// The grant controller writes a debug session's taint after admission: until then, an
	// active grant that covers debugging this pod is what let the container in.
	if active, err := d.debugGrantActive(ctx, pod); err != nil || active {
		return nil, err
	}
	var names []string
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	return []Finding{{Check: fixityv1.CheckEphemeralContainers, Message: fmt.Sprintf("ephemeral container(s) %s were added to the running pod", strings.Join(names, ", "))}}, nil
}

func (d *Detector) interactiveAccess(ctx context.Context, pod *corev1.Pod) ([]Finding, error) {
	taint, ok := pod.Annotations[fixityv1.TaintedAnnotation]
	if !ok {
		return nil, nil
	}
	active, err := d.taintGrantActive(ctx, pod)
	if err != nil || active {
		return nil, err
	}
	return []Finding{{Check: fixityv1.CheckInteractiveAccess, Message: strings.TrimPrefix(taint, string(fixityv1.CheckInteractiveAccess)+": ") + ", which has ended"}}, nil
}

// taintGrantActive reports whether the pod's taint names a grant that is still active.
func (d *Detector) taintGrantActive(ctx context.Context, pod *corev1.Pod) (bool, error) {
	nn, ok := grants.TaintGrant(pod.Annotations[fixityv1.TaintedAnnotation])
	if !ok {
		return false, nil
	}
	g := &fixityv1.AccessGrant{}
	if err := d.Reader.Get(ctx, nn, g); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	st, err := d.grantState(ctx, g)
	if err != nil {
		return false, err
	}
	// A Pending grant has let nobody in yet; a tainted pod under it was let in by an earlier
	// grant of the same name, or tampered with: either way it is due.
	return st.Phase == fixityv1.GrantActive, nil
}

// grantState is g's state now, by the Detector's clock.
func (d *Detector) grantState(ctx context.Context, g *fixityv1.AccessGrant) (grants.State, error) {
	f := d.Grants
	if f == nil {
		f = &grants.Finder{Reader: d.Reader, Clock: d.Clock}
	}
	var c clock.PassiveClock = clock.RealClock{}
	if d.Clock != nil {
		c = d.Clock
	}
	return f.State(ctx, g, c.Now())
}

// debugGrantActive reports whether an active grant covers debugging pod.
func (d *Detector) debugGrantActive(ctx context.Context, pod *corev1.Pod) (bool, error) {
	var list fixityv1.AccessGrantList
	if err := d.Reader.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		return false, fmt.Errorf("listing AccessGrants in %s: %w", pod.Namespace, err)
	}
	for i := range list.Items {
		g := &list.Items[i]
		covers, err := grants.Covers(g, pod, fixityv1.AccessDebug)
		if err != nil || !covers {
			continue
		}
		st, err := d.grantState(ctx, g)
		if err != nil {
			return false, err
		}
		if st.Phase == fixityv1.GrantActive {
			return true, nil
		}
	}
	return false, nil
}

func (d *Detector) specChange(ctx context.Context, pod *corev1.Pod) ([]Finding, error) {
	recorded, ok := pod.Annotations[fixityv1.SpecHashAnnotation]
	if !ok {
		return nil, nil
	}
	now, err := admitted.SpecHash(pod)
	if err != nil {
		return nil, err
	}
	if now == recorded {
		return nil, nil
	}
	// A hash of another records version, or taken under another Kubernetes version (which may
	// default fields it did not know), says nothing: the drift controller stamps it again. The
	// version is asked afresh before a mismatch is called drift, in case the API server was
	// upgraded within the minute.
	if d.Versions != nil {
		stamp := admitted.StampOf(pod)
		for _, fresh := range []bool{false, true} {
			current, err := d.Versions.Current(ctx, fresh)
			if err != nil {
				return nil, err
			}
			if stamp != current {
				return nil, nil
			}
		}
	}
	return []Finding{{Check: fixityv1.CheckSpecChange, Message: "the containers were changed in place since admission (" + fixityv1.SpecHashAnnotation + " no longer matches)"}}, nil
}

// unverified verifies the pod now: a pod Fixity did not admit (no verified record: created
// while the webhook was down or before p existed) against every admission check of p, and an
// admitted one against p's current image rules (an authority removed, a key replaced).
func (d *Detector) unverified(ctx context.Context, pod *corev1.Pod, p *fixityv1.ImmutabilityPolicy) ([]Finding, error) {
	checks := []admit.Check{d.Images}
	_, recorded := pod.Annotations[fixityv1.VerifiedAnnotation]
	if !recorded {
		checks = d.Checks
	}
	// Judged as a template: every container, and a tag by what it points at now.
	vs := admit.RunChecks(ctx, checks, []fixityv1.ImmutabilityPolicy{*p}, &admit.Request{Pod: pod, Template: true})
	var out []Finding
	var undecided []string
	for _, v := range vs {
		switch {
		case v.Rule == images.RuleDigest && recorded:
			// An admitted pod runs a digest; the digest rule was settled at admission.
		case v.Transient:
			undecided = append(undecided, v.String())
		default:
			out = append(out, Finding{Check: fixityv1.CheckUnverified, Message: v.String()})
		}
	}
	if len(undecided) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("%s", strings.Join(undecided, "; "))
	}
	return out, nil
}

// configChange compares the pod's record of its ConfigMaps and Secrets with their data now,
// under a policy that says config.mutable: Replace. A pod with no record (admitted before the
// feature, or under another policy) is never drifted for it; a deleted object is reported and
// kept (Kept).
func (d *Detector) configChange(ctx context.Context, pod *corev1.Pod, p *fixityv1.ImmutabilityPolicy) ([]Finding, error) {
	if d.Config == nil || podconfig.Mutability(p) != fixityv1.ConfigReplace {
		return nil, nil
	}
	rec, ok, err := podconfig.ReadRecord(pod)
	if !ok || err != nil {
		// Only the operator writes the record (the annotation guard): one that does not parse
		// is no evidence either way, and is said once per change with the pod's other findings.
		return nil, err
	}
	changed, deleted, err := d.Config.Changed(ctx, pod.Namespace, rec)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, e := range changed {
		out = append(out, Finding{Check: fixityv1.CheckConfigChange, Message: podconfig.Describe(e, false)})
	}
	for _, e := range deleted {
		out = append(out, Finding{Check: fixityv1.CheckConfigChange, Message: podconfig.Describe(e, true), Kept: true})
	}
	return out, nil
}
