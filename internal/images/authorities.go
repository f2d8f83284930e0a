package images

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/tuf"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Keys a keyless authority's trust root (ConfigMap or Secret) may hold, all PEM.
const (
	// TrustRootFulcio holds the Fulcio root certificate(s) and any intermediates.
	TrustRootFulcio = "fulcio.pem"
	// TrustRootRekor holds the Rekor public key(s); required when transparencyLog is Require.
	TrustRootRekor = "rekor.pub"
	// TrustRootCTLog holds the certificate transparency log key(s); without it embedded SCTs
	// are not checked.
	TrustRootCTLog = "ctlog.pub"
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
	rekor    struct {
		sync.Mutex
		keys *cosign.TrustedTransparencyLogPubKeys
		// fetch shares one load among concurrent callers; the mutex is never held across it.
		fetch singleflight.Group
	}
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
		// payload's digest only in its CLI).
		ClaimVerifier: cosign.SimpleClaimVerifier,
		IgnoreTlog:    spec.TransparencyLog != fixityv1.TransparencyLogRequire,
		// Never call Rekor: verification is offline, from the bundle on the signature.
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
			keys, err := a.rekorKeys(ctx)
			if err != nil {
				return Authority{}, fmt.Errorf("transparencyLog Require: loading Rekor public keys (set SIGSTORE_REKOR_PUBLIC_KEY on the manager for a private Rekor): %w", err)
			}
			au.opts.RekorPubKeys = keys
		}
	case spec.Keyless != nil:
		k := spec.Keyless
		ref := k.TrustRootRef
		data, err := a.read(ctx, ref.Kind, ref.Namespace, ref.Name)
		if err != nil {
			return Authority{}, fmt.Errorf("keyless.trustRootRef: %w", err)
		}
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data[TrustRootFulcio])
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate found")
		}
		if err != nil {
			return Authority{}, fmt.Errorf("keyless.trustRootRef: %s %s/%s needs %q with the Fulcio root certificate(s) in PEM: %w", kindOrDefault(ref.Kind), ref.Namespace, ref.Name, TrustRootFulcio, err)
		}
		au.opts.RootCerts, au.opts.IntermediateCerts = x509.NewCertPool(), x509.NewCertPool()
		for _, c := range certs {
			if isSelfSigned(c) {
				au.opts.RootCerts.AddCert(c)
			} else {
				au.opts.IntermediateCerts.AddCert(c)
			}
		}
		au.opts.Identities = []cosign.Identity{{Issuer: k.Issuer, Subject: k.Subject, SubjectRegExp: k.SubjectRegExp}}
		h.Write(data[TrustRootFulcio])
		h.Write([]byte("\x00" + k.Issuer + "\x00" + k.Subject + "\x00" + k.SubjectRegExp))
		if ct := data[TrustRootCTLog]; len(ct) > 0 {
			keys, err := transparencyKeys(ct)
			if err != nil {
				return Authority{}, fmt.Errorf("keyless.trustRootRef: %q: %w", TrustRootCTLog, err)
			}
			au.opts.CTLogPubKeys = keys
			h.Write(ct)
		} else {
			au.opts.IgnoreSCT = true
		}
		if !au.opts.IgnoreTlog {
			rk := data[TrustRootRekor]
			if len(rk) == 0 {
				return Authority{}, fmt.Errorf("transparencyLog Require: %s %s/%s has no %q with the Rekor public key", kindOrDefault(ref.Kind), ref.Namespace, ref.Name, TrustRootRekor)
			}
			keys, err := transparencyKeys(rk)
			if err != nil {
				return Authority{}, fmt.Errorf("keyless.trustRootRef: %q: %w", TrustRootRekor, err)
			}
			au.opts.RekorPubKeys = keys
			h.Write(rk)
		}
	default:
		return Authority{}, fmt.Errorf("neither key nor keyless is set")
	}
	h.Write([]byte("\x00tlog=" + strconv.FormatBool(au.opts.IgnoreTlog)))
	au.fingerprint = hex.EncodeToString(h.Sum(nil))
	return au, nil
}

// ParsePublicKey loads a PEM public key as cosign does for `cosign verify --key`.
func ParsePublicKey(pem []byte) (signature.Verifier, error) {
	v, err := sigs.LoadPublicKeyRaw(pem, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("not a usable public key (ECDSA P-256/P-384, RSA or Ed25519 PEM): %w", err)
	}
	return v, nil
}

func kindOrDefault(kind string) string {
	if kind == "" {
		return "ConfigMap"
	}
	return kind
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

// transparencyKeys parses one or more PEM public keys of a transparency log (Rekor or CT).
func transparencyKeys(pemBytes []byte) (*cosign.TrustedTransparencyLogPubKeys, error) {
	keys := cosign.NewTrustedTransparencyLogPubKeys()
	for rest := pemBytes; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if err := keys.AddTransparencyLogPubKey(pem.EncodeToMemory(block), tuf.Active); err != nil {
			return nil, fmt.Errorf("not a usable public key: %w", err)
		}
	}
	if len(keys.Keys) == 0 {
		return nil, fmt.Errorf("no PEM public key found")
	}
	return &keys, nil
}

// rekorKeys loads the Rekor keys for key authorities the way the cosign CLI does
// (SIGSTORE_REKOR_PUBLIC_KEY, else the embedded public-good TUF root), once.
func (a *Authorities) rekorKeys(ctx context.Context) (*cosign.TrustedTransparencyLogPubKeys, error) {
	a.rekor.Lock()
	keys := a.rekor.keys
	a.rekor.Unlock()
	if keys != nil {
		return keys, nil
	}
	v, err, _ := a.rekor.fetch.Do("rekor", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
		defer cancel()
		keys, err := cosign.GetRekorPubs(ctx)
		if err != nil {
			return nil, err
		}
		a.rekor.Lock()
		a.rekor.keys = keys
		a.rekor.Unlock()
		return keys, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*cosign.TrustedTransparencyLogPubKeys), nil
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
