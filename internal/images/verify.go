package images

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/cosign/v3/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/fixity-dev/fixity/internal/metrics"
)

const (
	// verifiedTTL keeps a positive verdict: a digest verified once stays admissible while the
	// registry is down. A new policy generation or a rotated key is a new cache key.
	verifiedTTL = 12 * time.Hour
	// rejectedTTL keeps a negative verdict briefly, so a rollout of an unsigned image costs one
	// registry round trip, yet signing it afterwards takes effect quickly.
	rejectedTTL = 30 * time.Second
	// maxSignatures bounds the signatures looked at per image: a registry serving thousands
	// must not make one admission verify thousands.
	maxSignatures = 64
	// cacheSize bounds the verdicts kept in memory.
	cacheSize = 10000
)

// Verdict is the outcome of verifying one image digest against a policy's authorities.
type Verdict struct {
	// Verified are the names of the authorities whose signature verified, in policy order.
	Verified []string
	// Formats say, per verified authority, which signature format verified it.
	Formats map[string]string
	// Failures say, per authority that did not verify, why.
	Failures []string
	// Unchecked says why one signature format could not be read; such a verdict is not cached.
	Unchecked []string
	// Attested are the names of the attestation rules ("policy/attestation") the image meets.
	Attested []string
	// Unattested say, per attestation rule not met, why.
	Unattested []string
}

// Verifier verifies cosign signatures of image digests, caching verdicts per (digest, policy
// generation, key material) and sharing one registry round trip among concurrent requests.
type Verifier struct {
	Registry *Registry

	once     sync.Once
	verdicts *cache.LRUExpireCache
	group    singleflight.Group
}

// Verify checks the signatures of digest against authorities. scope identifies the policy
// generation the authorities come from. The error is for a verification that could not be
// done (registry unreachable); a verification that ran and failed is a Verdict with failures.
func (v *Verifier) Verify(ctx context.Context, digest name.Digest, scope string, authorities []Authority, attestations []Attestation, kc authn.Keychain) (Verdict, error) {
	v.once.Do(func() { v.verdicts = cache.NewLRUExpireCache(cacheSize) })
	keyParts := []string{digest.String(), scope, keychainID(kc)}
	for _, a := range authorities {
		keyParts = append(keyParts, a.Name+"="+a.fingerprint)
	}
	key := strings.Join(keyParts, "|")
	if cached, ok := v.verdicts.Get(key); ok {
		metrics.ImageVerifications.WithLabelValues(metrics.VerificationCached).Inc()
		return cached.(Verdict), nil
	}
	return shared(ctx, &v.group, key, "verifying "+digest.String(), v.Registry.timeout(), func(vctx context.Context) (Verdict, error) {
		if cached, ok := v.verdicts.Get(key); ok {
			return cached.(Verdict), nil
		}
		verdict, err := v.verify(vctx, digest, authorities, attestations, kc)
		if err != nil {
			metrics.ImageVerifications.WithLabelValues(metrics.VerificationError).Inc()
			return Verdict{}, err
		}
		ttl := verifiedTTL
		result := metrics.VerificationVerified
		if len(verdict.Failures) > 0 || len(verdict.Unattested) > 0 {
			ttl, result = rejectedTTL, metrics.VerificationRejected
		}
		metrics.ImageVerifications.WithLabelValues(result).Inc()
		if len(verdict.Unchecked) == 0 {
			v.verdicts.Add(key, verdict, ttl)
		}
		return verdict, nil
	})
}

// shared runs fn once for all concurrent callers with the same key (singleflight), so that a
// rollout's pods share one registry round trip. fn gets its own deadline of timeout: a caller
// that gives up does not fail the others, who still get the answer. what names the work in the
// error of a caller that gives up.
func shared[T any](ctx context.Context, g *singleflight.Group, key, what string, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fn(fctx)
	})
	var zero T
	select {
	case res := <-ch:
		if res.Err != nil {
			return zero, res.Err
		}
		return res.Val.(T), nil
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// Signature formats, as recorded in fixity.dev/verified.
const (
	// FormatBundle is a sigstore bundle stored as an OCI referrer (or in the referrers fallback
	// tag): what cosign v3 writes by default.
	FormatBundle = "bundle"
	// FormatLegacy is a signature layer in the sha256-<digest>.sig tag: cosign v2.
	FormatLegacy = "legacy"
)

// material is what the registry holds for one digest: the signatures in both formats, fetched
// once and checked against every authority without further requests.
type material struct {
	legacy  []oci.Signature
	bundles []*fetchedBundle
	// unchecked says why a format could not be read (registry errors); such a verdict is not
	// cached, and a shortfall it may explain is an error rather than a denial.
	unchecked []string
	// legacyErr and bundleErr are the registry errors of each format, explained.
	legacyErr, bundleErr error
	// attestations are those of the legacy .att tag (cosign v2's `cosign attest`), read only
	// when a policy asks for attestations.
	attestations []*legacyAttestation
}

// legacyAttestation is one DSSE envelope of the .att tag, with the statement it holds (used
// for the conditions only once its signature verified).
type legacyAttestation struct {
	sig           oci.Signature
	predicateType string
	statement     map[string]any
}

// fetchedBundle is one sigstore bundle among the referrers, with the predicate type its
// (not yet verified) statement claims, used only to pick the bundles worth verifying.
type fetchedBundle struct {
	digest        string
	bundle        *sgbundle.Bundle
	predicateType string
	// malformed says why a bundle-typed referrer could not be read.
	malformed string
}

// verify fetches the signatures of digest once and checks them against every authority. Both
// formats count: an authority is verified by a bundle or by a legacy signature.
func (v *Verifier) verify(ctx context.Context, digest name.Digest, authorities []Authority, attestations []Attestation, kc authn.Keychain) (Verdict, error) {
	h, err := v1.NewHash(digest.DigestStr())
	if err != nil {
		return Verdict{}, fmt.Errorf("digest %s: %w", digest.DigestStr(), err)
	}
	m := v.fetch(ctx, digest, kc, len(attestations) > 0)
	if m.legacyErr != nil && m.bundleErr != nil {
		if m.legacyErr.Error() == m.bundleErr.Error() { // the registry is down, say
			return Verdict{}, fmt.Errorf("fetching signatures: %w", m.legacyErr)
		}
		return Verdict{}, errors.New(strings.Join(m.unchecked, "; "))
	}
	verdict := Verdict{Formats: map[string]string{}, Unchecked: m.unchecked}
	for _, a := range authorities {
		format, failure := verifyAuthority(ctx, a, h, m)
		if failure != "" {
			verdict.Failures = append(verdict.Failures, a.Name+": "+failure)
			continue
		}
		verdict.Verified = append(verdict.Verified, a.Name)
		verdict.Formats[a.Name] = format
	}
	for _, a := range attestations {
		if why := checkAttestation(ctx, a, authorities, h, m); why != "" {
			verdict.Unattested = append(verdict.Unattested, a.Name+": "+why)
			continue
		}
		verdict.Attested = append(verdict.Attested, a.Name)
	}
	return verdict, nil
}

// verifyAuthority returns the format that verified a for h, or why none did.
func verifyAuthority(ctx context.Context, a Authority, h v1.Hash, m *material) (format, failure string) {
	var errs []error
	signatures := 0
	for _, b := range m.bundles {
		if b.predicateType != types.CosignSignPredicateType {
			// An attestation (SLSA provenance, an SBOM) is not a signature of the image, even
			// when the same key signed it.
			continue
		}
		signatures++
		if _, err := verifyBundle(ctx, a, h, b.bundle); err != nil {
			errs = append(errs, fmt.Errorf("bundle %s: %w", short(b.digest), err))
			continue
		}
		return FormatBundle, ""
	}
	for _, s := range m.legacy {
		signatures++
		co := a.opts
		if _, err := cosign.VerifyImageSignature(ctx, s, h, &co); err != nil {
			errs = append(errs, err)
			continue
		}
		return FormatLegacy, ""
	}
	for _, b := range m.bundles {
		if b.malformed != "" {
			errs = append(errs, fmt.Errorf("referrer %s cannot be used: %s", short(b.digest), b.malformed))
		}
	}
	if signatures == 0 && len(errs) == 0 {
		if attestations := len(m.bundles); attestations > 0 { // all of them verifiable statements
			return "", fmt.Sprintf("no signatures found (%d attestation(s), which are not signatures of the image)", attestations)
		}
		return "", "no signatures found"
	}
	return "", fmt.Sprintf("no matching signature (%s)", summarize(errs))
}

// verifyBundle verifies one bundle for a against the digest h with sigstore-go, as cosign's
// VerifyNewBundle does: signature, certificate chain and identity or key, the transparency
// log's proof or a timestamp when the authority asks for one, and that the statement's subject
// is this digest.
func verifyBundle(ctx context.Context, a Authority, h v1.Hash, b *sgbundle.Bundle) (*verify.VerificationResult, error) {
	raw, err := hex.DecodeString(h.Hex)
	if err != nil {
		return nil, err
	}
	co := a.opts
	co.UseSignedTimestamps = a.signedTimestamps
	if co.SigVerifier == nil && co.TrustedMaterial == nil {
		return nil, errors.New("no trust root")
	}
	return cosign.VerifyNewBundle(ctx, &co, verify.WithArtifactDigest(h.Algorithm, raw), b)
}

// fetch reads both formats concurrently: the legacy .sig tag and the referrers' bundles.
func (v *Verifier) fetch(ctx context.Context, digest name.Digest, kc authn.Keychain, attestations bool) *material {
	registry := digest.Context().RegistryStr()
	opts := []ociremote.Option{ociremote.WithRemoteOptions(v.Registry.Options(ctx, kc)...)}
	m := &material{}
	var attErr error
	var wg sync.WaitGroup
	wg.Go(func() { m.legacy, m.legacyErr = fetchLegacy(digest, opts) })
	wg.Go(func() { m.bundles, m.bundleErr = v.fetchBundles(ctx, digest, kc) })
	if attestations {
		wg.Go(func() { m.attestations, attErr = fetchLegacyAttestations(digest, opts) })
	}
	wg.Wait()
	if attErr != nil {
		m.unchecked = append(m.unchecked, "fetching legacy attestations: "+Explain(registry, attErr).Error())
	}
	if m.legacyErr != nil {
		m.legacyErr = Explain(registry, m.legacyErr)
		m.unchecked = append(m.unchecked, "fetching legacy signatures: "+m.legacyErr.Error())
	}
	if m.bundleErr != nil {
		m.bundleErr = Explain(registry, m.bundleErr)
		m.unchecked = append(m.unchecked, "fetching signature bundles: "+m.bundleErr.Error())
	}
	return m
}

func fetchLegacy(digest name.Digest, opts []ociremote.Option) ([]oci.Signature, error) {
	tag, err := ociremote.SignatureTag(digest, opts...)
	if err != nil {
		return nil, fmt.Errorf("locating signatures: %w", err)
	}
	return fetchLayers(tag, opts)
}

// fetchLegacyAttestations reads the .att tag: each layer a DSSE envelope of an in-toto statement.
// One whose statement does not decode is left out: it can satisfy no rule.
func fetchLegacyAttestations(digest name.Digest, opts []ociremote.Option) ([]*legacyAttestation, error) {
	tag, err := ociremote.AttestationTag(digest, opts...)
	if err != nil {
		return nil, fmt.Errorf("locating attestations: %w", err)
	}
	sigs, err := fetchLayers(tag, opts)
	if err != nil {
		return nil, err
	}
	var out []*legacyAttestation
	for _, s := range sigs {
		payload, err := s.Payload()
		if err != nil {
			continue
		}
		var env struct {
			Payload string `json:"payload"`
		}
		if json.Unmarshal(payload, &env) != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			continue
		}
		var st map[string]any
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		pt, _ := st["predicateType"].(string)
		out = append(out, &legacyAttestation{sig: s, predicateType: pt, statement: st})
	}
	return out, nil
}

// fetchLayers reads the signature layers of a legacy tag, with their payloads.
func fetchLayers(tag name.Tag, opts []ociremote.Option) ([]oci.Signature, error) {
	sigs, err := ociremote.Signatures(tag, opts...)
	if err != nil {
		return nil, err
	}
	list, err := sigs.Get()
	if err != nil {
		return nil, err
	}
	if len(list) > maxSignatures {
		list = list[:maxSignatures]
	}
	// Copy fetches each signature's payload once, so checking it against several authorities
	// costs no further registry requests.
	fetched := make([]oci.Signature, 0, len(list))
	for _, s := range list {
		c, err := static.Copy(s)
		if err != nil {
			return nil, fmt.Errorf("fetching signature payload: %w", err)
		}
		fetched = append(fetched, c)
	}
	return fetched, nil
}

// bundleMediaTypePrefix starts the media type of a sigstore bundle layer.
const bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"

// fetchBundles lists every referrer of digest (not filtered on artifactType: registries and
// tools disagree on it, and filtering is how bundles get lost) and reads the sigstore bundles
// among them, as cosign.GetBundles does, but bounded, concurrently, and keeping why a bundle
// could not be read. go-containerregistry falls back to the referrers tag (sha256-<hex>) on
// registries without the referrers API.
func (v *Verifier) fetchBundles(ctx context.Context, digest name.Digest, kc authn.Keychain) ([]*fetchedBundle, error) {
	ropts := v.Registry.Options(ctx, kc)
	idx, err := remote.Referrers(digest, ropts...)
	if err != nil {
		return nil, err
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	refs := manifest.Manifests
	if len(refs) > maxSignatures {
		refs = refs[:maxSignatures]
	}
	out := make([]*fetchedBundle, len(refs))
	errs := make([]error, len(refs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, d := range refs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = readBundle(digest.Context().Digest(d.Digest.String()), ropts)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(b *fetchedBundle) bool { return b == nil }), nil
}

// readBundle returns the bundle that ref holds, nil when it is another kind of referrer (an
// SBOM, a legacy cosign referrer), or a bundle marked malformed. The error is for the registry.
func readBundle(ref name.Digest, ropts []remote.Option) (*fetchedBundle, error) {
	img, err := remote.Image(ref, ropts...)
	if IsNotFound(err) {
		// Listed (in the referrers tag, say) but gone: a fact about this image, not a registry
		// that cannot answer, so it is reported and the other signatures still count.
		return &fetchedBundle{digest: ref.DigestStr(), malformed: "it is listed among the referrers but not in the registry"}, nil
	}
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != 1 {
		return nil, nil
	}
	mt, err := layers[0].MediaType()
	if err != nil || !strings.HasPrefix(string(mt), bundleMediaTypePrefix) {
		return nil, nil
	}
	fb := &fetchedBundle{digest: ref.DigestStr()}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	pb := &protobundle.Bundle{}
	if err := protojson.Unmarshal(raw, pb); err != nil {
		fb.malformed = err.Error()
		return fb, nil
	}
	b, err := sgbundle.NewBundle(pb)
	if err != nil {
		fb.malformed = err.Error()
		return fb, nil
	}
	if !b.MinVersion("v0.3") {
		fb.malformed = "bundle version older than v0.3"
		return fb, nil
	}
	env, err := b.Envelope()
	if err != nil {
		fb.malformed = "it holds no DSSE envelope (an image is signed with an in-toto statement)"
		return fb, nil
	}
	st, err := env.Statement()
	if err != nil {
		fb.malformed = "its statement does not decode: " + err.Error()
		return fb, nil
	}
	fb.bundle, fb.predicateType = b, st.GetPredicateType()
	return fb, nil
}

// short is a digest cut for messages.
func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// summarize keeps the distinct reasons signatures failed, so a message stays one line.
func summarize(errs []error) string {
	var out []string
	for _, err := range errs {
		if msg := err.Error(); !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return strings.Join(out, "; ")
}
