package images

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// referencedTTL is how long a Secret or ConfigMap read for a policy is reused: a rotated key
// takes effect within it, and a burst of admissions reads it once.
const referencedTTL = 30 * time.Second

// Authority is one compiled authority of a policy: the cosign check options that verify its
// signatures, without the registry options of a particular request.
type Authority struct {
	// Name is "policy/authority", as recorded in fixity.dev/verified.
	Name string
	opts cosign.CheckOpts
	// fingerprint changes when the key material changes, so cached verdicts do not outlive a
	// rotated key in a Secret.
	fingerprint string
	// signedTimestamps makes bundles prove their signing time with a timestamp authority (a
	// keyless authority without the log, whose trust root has one).
	signedTimestamps bool
}

// Authorities compiles the authorities of policies' images.verify, reading referenced Secrets
// and ConfigMaps through Reader (uncached: the operator must not keep every Secret of the
// cluster in memory) with a short TTL.
type Authorities struct {
	Reader client.Reader

	once    sync.Once
	objects *cache.LRUExpireCache
	// compiled keeps compiled authorities per policy generation for referencedTTL: parsing
	// keys and trust roots on every admission would cost more than the cached verdict saves.
	compiled *cache.LRUExpireCache
}

// Compile returns p's authorities, in spec order. An authority that cannot be compiled (a key
// that does not parse, a missing Secret) is an error naming the policy and field.
func (a *Authorities) Compile(ctx context.Context, p *fixityv1.ImmutabilityPolicy) ([]Authority, error) {
	v := p.Spec.Images.Verify
	if v == nil {
		return nil, nil
	}
	a.once.Do(a.init)
	key := scope(p)
	if c, ok := a.compiled.Get(key); ok {
		return c.([]Authority), nil
	}
	out := make([]Authority, 0, len(v.Authorities))
	for i := range v.Authorities {
		au, err := a.compile(ctx, &v.Authorities[i])
		if err != nil {
			return nil, fmt.Errorf("policy %s: spec.images.verify.authorities[%d] (%s): %w", p.Name, i, v.Authorities[i].Name, err)
		}
		au.Name = p.Name + "/" + v.Authorities[i].Name
		out = append(out, au)
	}
	a.compiled.Add(key, out, referencedTTL)
	return out, nil
}

func (a *Authorities) init() {
	a.objects = cache.NewLRUExpireCache(256)
	a.compiled = cache.NewLRUExpireCache(256)
}

func (a *Authorities) compile(ctx context.Context, spec *fixityv1.Authority) (Authority, error) {
	h := sha256.New()
	au := Authority{opts: cosign.CheckOpts{
		// Without it a signature copied from another image verifies (cosign checks the
		// payload's digest only in its CLI). Bundles are checked against the digest by
		// sigstore-go (verify.WithArtifactDigest) instead.
		ClaimVerifier: cosign.SimpleClaimVerifier,
		IgnoreTlog:    spec.TransparencyLog != fixityv1.TransparencyLogRequire,
		// Never call Rekor: verification is offline, from the proofs on the signature.
		Offline: true,
	}}
	switch {
	case spec.Key != nil:
		pem := []byte(spec.Key.PublicKey)
		if ref := spec.Key.SecretRef; ref != nil {
			data, err := a.read(ctx, "Secret", ref.Namespace, ref.Name)
			if err != nil {
				return Authority{}, fmt.Errorf("key.secretRef: %w", err)
			}
			key := ref.Key
			if key == "" {
				key = "cosign.pub"
			}
			if pem = data[key]; len(pem) == 0 {
				return Authority{}, fmt.Errorf("key.secretRef: Secret %s/%s has no key %q", ref.Namespace, ref.Name, key)
			}
		}
		verifier, err := ParsePublicKey(pem)
		if err != nil {
			return Authority{}, fmt.Errorf("key: %w", err)
		}
		au.opts.SigVerifier = verifier
		h.Write(pem)
		if !au.opts.IgnoreTlog {
			tr, sum, err := a.keyRekor(ctx, spec.Key.TrustRootRef)
			if err != nil {
				return Authority{}, err
			}
			au.opts.TrustedMaterial = tr.Material
			h.Write(sum)
		}
	case spec.Keyless != nil:
		k := spec.Keyless
		ref := k.TrustRootRef
		data, err := a.read(ctx, ref.Kind, ref.Namespace, ref.Name)
		if err != nil {
			return Authority{}, fmt.Errorf("keyless.trustRootRef: %w", err)
		}
		tr, err := ParseTrustRoot(data, true)
		if err != nil {
			return Authority{}, fmt.Errorf("keyless.trustRootRef: %s %s/%s: %w", kindOrDefault(ref.Kind), ref.Namespace, ref.Name, err)
		}
		if !au.opts.IgnoreTlog && len(tr.Material.RekorLogs()) == 0 {
			return Authority{}, fmt.Errorf("transparencyLog Require: %s %s/%s has no Rekor log (in %q, or %q)", kindOrDefault(ref.Kind), ref.Namespace, ref.Name, TrustRootJSON, TrustRootRekor)
		}
		au.opts.TrustedMaterial = tr.Material
		// Embedded SCTs are required when the trust root names a CT log, as cosign does.
		au.opts.IgnoreSCT = len(tr.Material.CTLogs()) == 0
		// Without the log's time a certificate is checked at a timestamp authority's time,
		// so an image stays verifiable after its short-lived certificate expires.
		au.signedTimestamps = au.opts.IgnoreTlog && len(tr.Material.TimestampingAuthorities()) > 0
		au.opts.Identities = []cosign.Identity{{Issuer: k.Issuer, Subject: k.Subject, SubjectRegExp: k.SubjectRegExp}}
		h.Write(digestOf(data))
		h.Write([]byte("\x00" + k.Issuer + "\x00" + k.Subject + "\x00" + k.SubjectRegExp))
	default:
		return Authority{}, fmt.Errorf("neither key nor keyless is set")
	}
	h.Write([]byte("\x00tlog=" + strconv.FormatBool(au.opts.IgnoreTlog)))
	au.fingerprint = hex.EncodeToString(h.Sum(nil))
	return au, nil
}

// keyRekor is the trust root whose Rekor logs check a key authority's transparencyLog Require:
// its key.trustRootRef, else the Rekor key the manager was given in SIGSTORE_REKOR_PUBLIC_KEY.
// Never a TUF fetch: admission must not depend on the public-good infrastructure being reachable.
func (a *Authorities) keyRekor(ctx context.Context, ref *fixityv1.TrustRootReference) (*TrustRoot, []byte, error) {
	var data map[string][]byte
	where := ""
	if ref != nil {
		d, err := a.read(ctx, ref.Kind, ref.Namespace, ref.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("key.trustRootRef: %w", err)
		}
		data, where = d, fmt.Sprintf("key.trustRootRef: %s %s/%s", kindOrDefault(ref.Kind), ref.Namespace, ref.Name)
	} else {
		path := os.Getenv(RekorPublicKeyEnv)
		if path == "" {
			return nil, nil, fmt.Errorf("transparencyLog Require needs key.trustRootRef (a trusted_root.json or rekor.pub), or %s on the manager", RekorPublicKeyEnv)
		}
		pemBytes, err := os.ReadFile(filepath.Clean(path))
		if err != nil {
			return nil, nil, fmt.Errorf("transparencyLog Require: reading %s: %w", RekorPublicKeyEnv, err)
		}
		data, where = map[string][]byte{TrustRootRekor: pemBytes}, RekorPublicKeyEnv
	}
	tr, err := ParseTrustRoot(data, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(tr.Material.RekorLogs()) == 0 {
		return nil, nil, fmt.Errorf("transparencyLog Require: %s has no Rekor log (in %q, or %q)", where, TrustRootJSON, TrustRootRekor)
	}
	return tr, digestOf(data), nil
}

// RekorPublicKeyEnv names the file with the Rekor public key(s) for key authorities without a
// trustRootRef, as the cosign CLI reads it.
const RekorPublicKeyEnv = "SIGSTORE_REKOR_PUBLIC_KEY"

// digestOf is a digest of a ConfigMap's or Secret's data, so cached verdicts do not outlive a
// rotated key or trust root.
func digestOf(data map[string][]byte) []byte {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		_, _ = fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return h.Sum(nil)
}

// ParsePublicKey loads a PEM public key as cosign does for `cosign verify --key`.
func ParsePublicKey(pemBytes []byte) (signature.Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err == nil {
		var v signature.Verifier
		if v, err = signature.LoadVerifier(pub, crypto.SHA256); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("not a usable public key (ECDSA P-256/P-384, RSA or Ed25519 PEM): %w", err)
}

func kindOrDefault(kind string) string {
	if kind == "" {
		return "ConfigMap"
	}
	return kind
}

// read returns the data of a Secret or ConfigMap (binaryData included), from a short-lived cache.
func (a *Authorities) read(ctx context.Context, kind, namespace, name string) (map[string][]byte, error) {
	a.once.Do(a.init)
	kind = kindOrDefault(kind)
	key := kind + "/" + namespace + "/" + name
	if v, ok := a.objects.Get(key); ok {
		return v.(map[string][]byte), nil
	}
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	data := map[string][]byte{}
	switch kind {
	case "Secret":
		s := &corev1.Secret{}
		if err := a.Reader.Get(ctx, nn, s); err != nil {
			return nil, fmt.Errorf("reading Secret %s: %w", nn, err)
		}
		data = s.Data
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		if err := a.Reader.Get(ctx, nn, cm); err != nil {
			return nil, fmt.Errorf("reading ConfigMap %s: %w", nn, err)
		}
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
	default:
		return nil, fmt.Errorf("kind %q is neither ConfigMap nor Secret", kind)
	}
	a.objects.Add(key, data, referencedTTL)
	return data, nil
}
