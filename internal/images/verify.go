package images

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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

var verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "fixity_image_verifications_total",
	Help: "Image signature verifications by result: cached (no registry call), verified, rejected or error.",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(verifications)
}

// Verdict is the outcome of verifying one image digest against a policy's authorities.
type Verdict struct {
	// Verified are the names of the authorities whose signature verified, in policy order.
	Verified []string
	// Failures say, per authority that did not verify, why.
	Failures []string
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
func (v *Verifier) Verify(ctx context.Context, digest name.Digest, scope string, authorities []Authority, kc authn.Keychain) (Verdict, error) {
	v.once.Do(func() { v.verdicts = cache.NewLRUExpireCache(cacheSize) })
	keyParts := []string{digest.String(), scope}
	for _, a := range authorities {
		keyParts = append(keyParts, a.Name+"="+a.fingerprint)
	}
	key := strings.Join(keyParts, "|")
	if cached, ok := v.verdicts.Get(key); ok {
		verifications.WithLabelValues("cached").Inc()
		return cached.(Verdict), nil
	}
	return shared(ctx, &v.group, key, "verifying "+digest.String(), v.Registry.timeout(), func(vctx context.Context) (Verdict, error) {
		if cached, ok := v.verdicts.Get(key); ok {
			return cached.(Verdict), nil
		}
		verdict, err := v.verify(vctx, digest, authorities, kc)
		if err != nil {
			verifications.WithLabelValues("error").Inc()
			return Verdict{}, err
		}
		ttl := verifiedTTL
		result := "verified"
		if len(verdict.Failures) > 0 {
			ttl, result = rejectedTTL, "rejected"
		}
		verifications.WithLabelValues(result).Inc()
		v.verdicts.Add(key, verdict, ttl)
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

// verify fetches the signatures of digest once and checks them against every authority.
func (v *Verifier) verify(ctx context.Context, digest name.Digest, authorities []Authority, kc authn.Keychain) (Verdict, error) {
	registry := digest.Context().RegistryStr()
	opts := []ociremote.Option{ociremote.WithRemoteOptions(v.Registry.Options(ctx, kc)...)}
	tag, err := ociremote.SignatureTag(digest, opts...)
	if err != nil {
		return Verdict{}, fmt.Errorf("locating signatures: %w", err)
	}
	sigs, err := ociremote.Signatures(tag, opts...)
	if err != nil {
		return Verdict{}, fmt.Errorf("fetching signatures: %w", Explain(registry, err))
	}
	list, err := sigs.Get()
	if err != nil {
		return Verdict{}, fmt.Errorf("fetching signatures: %w", Explain(registry, err))
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
			return Verdict{}, fmt.Errorf("fetching signature payload: %w", Explain(registry, err))
		}
		fetched = append(fetched, c)
	}
	h, err := v1.NewHash(digest.DigestStr())
	if err != nil {
		return Verdict{}, fmt.Errorf("digest %s: %w", digest.DigestStr(), err)
	}

	var verdict Verdict
	for _, a := range authorities {
		if len(fetched) == 0 {
			verdict.Failures = append(verdict.Failures, a.Name+": no signatures found")
			continue
		}
		var errs []error
		for _, s := range fetched {
			co := a.opts
			if _, err := cosign.VerifyImageSignature(ctx, s, h, &co); err != nil {
				errs = append(errs, err)
				continue
			}
			verdict.Verified = append(verdict.Verified, a.Name)
			errs = nil
			break
		}
		if errs != nil {
			verdict.Failures = append(verdict.Failures, fmt.Sprintf("%s: no matching signature (%s)", a.Name, summarize(errs)))
		}
	}
	return verdict, nil
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
