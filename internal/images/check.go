package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	ctrl "sigs.k8s.io/controller-runtime"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/admitted"
)

// tagTTL is how long a tag resolution is reused: long enough that the mutating and validating
// webhooks of one pod, and several policies, share one lookup; short enough that a Require
// message names what the tag points at now.
const tagTTL = 5 * time.Second

// Rule names, as counted in fixity_admission_violations_total.
const (
	RuleReference  = "images.reference"
	RuleRegistries = "images.allowedRegistries"
	RuleDigest     = "images.digest"
	RuleVerify     = "images.verify"
	// RuleAttestations is images.verify.attestations.
	RuleAttestations = "images.verify.attestations"
)

// Keys and trust roots are read from Secrets and ConfigMaps named in policies; pull secrets and
// service accounts for registry credentials; the pins ConfigMaps are written next to the pods.
// +kubebuilder:rbac:groups="",resources=secrets;serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;patch

// Images enforces spec.Images: it is an admit.Check (pods, pod templates, new ephemeral
// containers, images changed on update) and an admit.Mutator (Resolve rewrites tags to digests
// on Pods being created, and every admitted pod gets its fixity.dev/verified and spec-hash
// records).
type Images struct {
	Registry    *Registry
	Verifier    *Verifier
	Authorities *Authorities
	Keychains   *Keychains
	// Pins keeps the pods of one owner on one digest; nil resolves every pod on its own.
	Pins *Pins
	// Versions stamps the records with their version (fixity.dev/record-version).
	Versions *admitted.Versions

	once    sync.Once
	tags    *cache.LRUExpireCache
	lookups singleflight.Group
}

// admittedNow returns the containers whose image this request admits: all of them on CREATE
// and for templates; on UPDATE (including kubectl debug), those that are new or whose image
// changed, so a policy added later does not block unrelated updates of running pods.
func admittedNow(req *admit.Request) []admitted.PodImage {
	all := admitted.PodImages(req.Pod)
	if req.Template || req.Admission.Operation != admissionv1.Update || req.OldPod == nil {
		return all
	}
	before := map[string]string{}
	for _, c := range admitted.PodImages(req.OldPod) {
		before[c.Key] = *c.Image
	}
	var out []admitted.PodImage
	for _, c := range all {
		if old, ok := before[c.Key]; !ok || old != *c.Image {
			out = append(out, c)
		}
	}
	return out
}

// CheckPod checks the images of req against p's image rules.
func (m *Images) CheckPod(ctx context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	rules := p.Spec.Images
	if rules.Digest == fixityv1.DigestIgnore && len(rules.AllowedRegistries) == 0 && rules.Verify == nil {
		return nil
	}
	cs := admittedNow(req)
	if len(cs) == 0 {
		return nil
	}
	authorities, err := m.Authorities.Compile(ctx, p)
	if err != nil {
		return []admit.Violation{transient(admit.New(p, RuleVerify, "", "images cannot be verified: %v", err))}
	}
	attestations, err := compiledAttestations(p)
	if err != nil {
		return []admit.Violation{admit.New(p, RuleAttestations, "", "images cannot be verified: %v", err)}
	}
	kc := m.Keychains.ForPod(ctx, req.Pod)
	results := make([][]admit.Violation, len(cs))
	concurrently(len(cs), func(i int) {
		results[i] = m.checkContainer(ctx, p, req, cs[i].Key, *cs[i].Image, authorities, attestations, kc)
	})
	var out []admit.Violation
	for _, r := range results {
		out = append(out, r...)
	}
	return out
}

func (m *Images) checkContainer(ctx context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request, cname, image string,
	authorities []Authority, attestations []Attestation, kc authn.Keychain) []admit.Violation {
	rules := p.Spec.Images
	ref, err := Parse(image)
	if err != nil {
		return []admit.Violation{admit.New(p, RuleReference, cname, "%v", err)}
	}
	if !Allowed(image, ref, rules.AllowedRegistries) {
		return []admit.Violation{admit.New(p, RuleRegistries, cname, "image %q is not from an allowed registry; allowed: %s",
			image, strings.Join(rules.AllowedRegistries, ", "))}
	}
	var out []admit.Violation
	digest, pinned := Pinned(ref)
	if !pinned {
		resolved, rerr := m.resolveTag(ctx, ref, kc, false)
		// Under Resolve the mutating webhook pins every tag of a pod it creates in Enforce, so a
		// tag left here is one it did not pin (another policy requires digests, a webhook after
		// Fixity put it back, a pin record was tampered with): it is denied like under Require.
		mustPin := rules.Digest == fixityv1.DigestRequire ||
			(rules.Digest == fixityv1.DigestResolve && !req.Template && p.Spec.Mode != fixityv1.ModeAudit)
		switch {
		case rules.Digest == fixityv1.DigestResolve && !req.Template && req.Admission.Operation == admissionv1.Update:
			// Only pods being created are mutated; an image changed in place must be pinned.
			msg := fmt.Sprintf("image %q is not pinned by digest; an image changed on an existing pod is not resolved, pin it", image)
			if rerr == nil {
				msg += " as " + pinnedAs(image, resolved)
			}
			return []admit.Violation{admit.New(p, RuleDigest, cname, "%s", msg)}
		case mustPin && rerr != nil:
			return []admit.Violation{transient(admit.New(p, RuleDigest, cname, "image %q is not pinned by digest, and the digest it points at could not be looked up (%v); pin it as %s@sha256:<digest>",
				image, rerr, stripRepo(image)))}
		case mustPin:
			return []admit.Violation{admit.New(p, RuleDigest, cname, "image %q is not pinned by digest; use %s (the digest that tag points at now)",
				image, pinnedAs(image, resolved))}
		case rules.Digest == fixityv1.DigestResolve && !req.Template && p.Spec.Mode == fixityv1.ModeAudit && rerr == nil:
			// Audit mutates nothing; say what Enforce would do.
			out = append(out, admit.New(p, RuleDigest, cname, "image %q is not pinned by digest; in Enforce mode it would run as %s",
				image, pinnedAs(image, resolved)))
		}
		if rules.Verify == nil {
			return out
		}
		if rerr != nil {
			return append(out, transient(admit.New(p, RuleVerify, cname, "image %q cannot be verified: the digest its tag points at could not be looked up: %v", image, rerr)))
		}
		digest = resolved
	}
	if rules.Verify == nil {
		return out
	}
	threshold := int(rules.Verify.Threshold)
	if threshold < 1 {
		threshold = 1
	}
	verdict, err := m.Verifier.Verify(ctx, digest, scope(p), authorities, attestations, kc)
	if err != nil {
		return append(out, transient(admit.New(p, RuleVerify, cname, "signatures of image %q could not be checked: %v", digest.String(), err)))
	}
	if len(verdict.Verified) < threshold && len(verdict.Unchecked) > 0 {
		return append(out, transient(admit.New(p, RuleVerify, cname, "signatures of image %q could not all be checked: %d of the %d required verified it (%s; %s)",
			digest.String(), len(verdict.Verified), threshold, strings.Join(verdict.Failures, "; "), strings.Join(verdict.Unchecked, "; "))))
	}
	if len(verdict.Verified) < threshold {
		return append(out, admit.New(p, RuleVerify, cname, "image %q is not signed by enough trusted authorities: %d of the %d required verified it (%s)",
			digest.String(), len(verdict.Verified), threshold, strings.Join(verdict.Failures, "; ")))
	}
	if len(verdict.Unattested) > 0 {
		v := admit.New(p, RuleAttestations, cname, "image %q lacks required attestations: attestation %s",
			digest.String(), strings.Join(verdict.Unattested, "; attestation "))
		v.Transient = len(verdict.Unchecked) > 0
		return append(out, v)
	}
	return out
}

func transient(v admit.Violation) admit.Violation {
	v.Transient = true
	return v
}

// scope identifies the policy generation that verdicts belong to.
func scope(p *fixityv1.ImmutabilityPolicy) string {
	return string(p.UID) + "/" + strconv.FormatInt(p.Generation, 10)
}

// resolveTag looks a tag up, sharing recent answers unless fresh is set; concurrent lookups of
// one tag (the pods of a rollout) share one registry round trip, fresh or not.
func (m *Images) resolveTag(ctx context.Context, ref name.Reference, kc authn.Keychain, fresh bool) (name.Digest, error) {
	m.once.Do(func() { m.tags = cache.NewLRUExpireCache(4096) })
	key := ref.String() + "|" + keychainID(kc)
	if d, ok := m.tags.Get(key); ok && !fresh {
		return d.(name.Digest), nil
	}
	return shared(ctx, &m.lookups, key, "resolving "+key, m.Registry.timeout(), func(ctx context.Context) (name.Digest, error) {
		d, err := m.Registry.Resolve(ctx, ref, kc)
		if err != nil {
			return name.Digest{}, err
		}
		m.tags.Add(key, d, tagTTL)
		return d, nil
	})
}

// pinnedAs is image pinned to d, in the form it was written (no docker.io expansion).
func pinnedAs(image string, d name.Digest) string { return stripRepo(image) + "@" + d.DigestStr() }

// MutatePod rewrites tags to digests when an Enforce policy says Resolve (and none says
// Require: the strictest rule wins, and Require's message is the useful one), and records
// what was admitted in fixity.dev/verified and fixity.dev/spec-hash.
func (m *Images) MutatePod(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	if len(policies) == 0 || req.Template || req.Admission.Operation != admissionv1.Create {
		return nil
	}
	var resolver *fixityv1.ImmutabilityPolicy
	require := false
	for i := range policies {
		p := &policies[i]
		if p.Spec.Mode == fixityv1.ModeAudit {
			continue
		}
		switch p.Spec.Images.Digest {
		case fixityv1.DigestRequire:
			require = true
		case fixityv1.DigestResolve:
			if resolver == nil {
				resolver = p
			}
		}
	}
	pod := req.Pod
	kc := m.Keychains.ForPod(ctx, pod)
	cs := admitted.PodImages(pod)
	var (
		mu  sync.Mutex
		out []admit.Violation
	)
	if resolver != nil && !require {
		originals := make([]string, len(cs))
		concurrently(len(cs), func(i int) {
			original, v := m.resolveContainer(ctx, resolver, policies, req, cs[i], kc)
			if v == nil {
				originals[i] = original
				return
			}
			mu.Lock()
			out = append(out, *v)
			mu.Unlock()
		})
		for i, c := range cs {
			if originals[i] != "" {
				setAnnotation(pod, originalImageKey(c.Key), originals[i])
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	record := admitted.Verified{}
	entries := make([]admitted.Image, len(cs))
	concurrently(len(cs), func(i int) { entries[i] = m.record(ctx, policies, *cs[i].Image, kc) })
	for i, c := range cs {
		record[c.Key] = entries[i]
	}
	enc, err := record.Encode()
	if err != nil {
		return []admit.Violation{admit.New(&policies[0], RuleVerify, "", "%v", err)}
	}
	hash, err := admitted.SpecHash(pod)
	if err != nil {
		return []admit.Violation{admit.New(&policies[0], RuleVerify, "", "%v", err)}
	}
	setAnnotation(pod, fixityv1.VerifiedAnnotation, enc)
	setAnnotation(pod, fixityv1.SpecHashAnnotation, hash)
	setAnnotation(pod, fixityv1.RecordVersionAnnotation, m.stamp(ctx).String())
	return nil
}

// resolveContainer rewrites one container's tag to a digest and returns the image as it was
// written (for an image already pinned, the original an earlier pass recorded, if provably
// true), or "" when there is none; or the violation when the tag cannot be resolved.
func (m *Images) resolveContainer(ctx context.Context, resolver *fixityv1.ImmutabilityPolicy, policies []fixityv1.ImmutabilityPolicy,
	req *admit.Request, c admitted.PodImage, kc authn.Keychain) (string, *admit.Violation) {
	original := *c.Image
	ref, err := Parse(original)
	if err != nil {
		return "", nil // the validator reports it with every policy's name
	}
	if _, ok := Pinned(ref); ok {
		return m.restoreOriginal(ctx, policies, req, c, kc), nil
	}
	// A pod's own tag is looked up afresh: it runs what the tag points at now (or what its
	// owner's first pod got).
	digest, err := m.pinFor(ctx, policies, req, c.Key, original, ref, kc, true)
	if err != nil {
		v := admit.New(resolver, RuleDigest, c.Key, "image %q is not pinned by digest and could not be resolved to one: %v", original, err)
		return "", &v
	}
	if digest == "" {
		return "", nil
	}
	*c.Image = stripRepo(original) + "@" + digest
	ctrl.LoggerFrom(ctx).V(1).Info("Resolved tag to digest", "container", c.Key, "image", original, "digest", digest)
	return original, nil
}

// pinFor is the digest the tagged image resolves to for this pod: its owner's pin, else what the
// tag points at now (fresh) or lately (cached). "" when some policy forbids the registry: it is
// never contacted, and the validator denies the image.
func (m *Images) pinFor(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, req *admit.Request, containerName, image string,
	ref name.Reference, kc authn.Keychain, fresh bool) (string, error) {
	for i := range policies {
		if !Allowed(image, ref, policies[i].Spec.Images.AllowedRegistries) {
			return "", nil
		}
	}
	resolve := func() (string, error) {
		d, err := m.resolveTag(ctx, ref, kc, fresh)
		return d.DigestStr(), err
	}
	if owner := Owner(req.Pod); owner != nil && m.Pins != nil {
		return m.Pins.Pin(ctx, req.Pod, owner, containerName, image, dryRun(req), resolve)
	}
	return resolve()
}

// restoreOriginal keeps the fixity.dev/original-image annotation of a container that is already
// pinned when it is provably true: the image it names resolves, for this pod, to exactly the
// image the container has. That is the case when Fixity is invoked again after another webhook
// (a sidecar injector) changed the pod it had already rewritten; a made-up value is dropped.
func (m *Images) restoreOriginal(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, req *admit.Request, c admitted.PodImage, kc authn.Keychain) string {
	claim, ok := req.Stripped[originalImageKey(c.Key)]
	if !ok {
		return ""
	}
	ref, err := Parse(claim)
	if err != nil {
		return ""
	}
	if _, pinned := Pinned(ref); pinned {
		return ""
	}
	digest, err := m.pinFor(ctx, policies, req, c.Key, claim, ref, kc, false)
	if err != nil || digest == "" || stripRepo(claim)+"@"+digest != *c.Image {
		ctrl.LoggerFrom(ctx).V(1).Info("Dropped an original-image annotation that does not match the image", "container", c.Key, "claim", claim)
		return ""
	}
	return claim
}

// record is what fixity.dev/verified says of one image: the image and the authorities (of all
// matching policies) whose signatures verified it. Failures are the validator's to report.
func (m *Images) record(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, image string, kc authn.Keychain) admitted.Image {
	entry := admitted.Image{Image: image}
	ref, err := Parse(image)
	if err != nil {
		return entry
	}
	digest, ok := Pinned(ref)
	if !ok {
		return entry
	}
	for i := range policies {
		p := &policies[i]
		if p.Spec.Images.Verify == nil || !Allowed(image, ref, p.Spec.Images.AllowedRegistries) {
			continue
		}
		authorities, err := m.Authorities.Compile(ctx, p)
		if err != nil {
			continue
		}
		attestations, err := compiledAttestations(p)
		if err != nil {
			continue
		}
		verdict, err := m.Verifier.Verify(ctx, digest, scope(p), authorities, attestations, kc)
		if err != nil {
			continue
		}
		entry.Authorities = append(entry.Authorities, verdict.Verified...)
		entry.Attestations = append(entry.Attestations, verdict.Attested...)
		for _, a := range verdict.Verified {
			if entry.Formats == nil {
				entry.Formats = map[string]string{}
			}
			entry.Formats[a] = verdict.Formats[a]
		}
	}
	return entry
}

func dryRun(req *admit.Request) bool {
	return req.Admission.DryRun != nil && *req.Admission.DryRun
}

func setAnnotation(pod *corev1.Pod, k, v string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[k] = v
}

// originalImageKey is fixity.dev/original-image.<container>. An annotation name is at most 63
// characters, so a very long container name is shortened with a hash to stay unique.
func originalImageKey(container string) string {
	const prefix = "original-image."
	// "volume/data" is "volume.data": a dot is never in a container's name either.
	n := prefix + strings.ReplaceAll(container, "/", ".")
	if len(n) > 63 {
		sum := sha256.Sum256([]byte(container))
		n = n[:54] + "-" + hex.EncodeToString(sum[:4])
	}
	return fixityv1.Prefix + n
}

// stamp is the version the records are written under. Not knowing the API server's version
// never denies a pod: a stamp that is not current is only stamped again later, never drift.
func (m *Images) stamp(ctx context.Context) admitted.Stamp {
	if m.Versions != nil {
		s, err := m.Versions.Current(ctx, false)
		if err == nil {
			return s
		}
		ctrl.LoggerFrom(ctx).Error(err, "Stamping the records with an unknown Kubernetes version")
	}
	return admitted.Stamp{Records: admitted.RecordsVersion, Kubernetes: "unknown"}
}

// concurrently runs f(0) … f(n-1) at the same time, each image's registry round trips alongside
// the others', and returns when all are done. One image, the usual pod, runs on the caller's
// goroutine: starting and waking another cost more than a cached verdict.
func concurrently(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}
