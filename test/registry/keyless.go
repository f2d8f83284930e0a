package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Fulcio is a test certificate authority standing in for Fulcio: a root and an intermediate
// that issue short-lived code-signing certificates for an OIDC identity.
type Fulcio struct {
	// ChainPEM is the intermediate and the root, PEM: what a trust root's fulcio.pem holds.
	ChainPEM []byte

	interCert *x509.Certificate
	interKey  *ecdsa.PrivateKey
}

// Fulcio's certificate extensions naming the OIDC issuer: the original raw string (1.1) and
// the DER UTF8String of v2 (1.8). Both are written, as Fulcio does.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// NewFulcio creates a root and an intermediate CA.
func NewFulcio() (*Fulcio, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fixity-test-fulcio-root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating root: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fixity-test-fulcio-intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating intermediate: %w", err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	chain, err := cryptoutils.MarshalCertificatesToPEM([]*x509.Certificate{inter, root})
	if err != nil {
		return nil, err
	}
	return &Fulcio{ChainPEM: chain, interCert: inter, interKey: interKey}, nil
}

// issue returns a 10-minute code-signing certificate for pub and the identity (issuer,
// subject); a subject that is a URL goes into the URI SAN, anything else is an email SAN.
func (f *Fulcio) issue(pub crypto.PublicKey, issuer, subject string) ([]byte, error) {
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		NotBefore:    now.Add(-time.Minute), NotAfter: now.Add(10 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: v2}},
	}
	if u, err := url.Parse(subject); err == nil && u.Scheme != "" {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.interCert, pub, f.interKey)
	if err != nil {
		return nil, fmt.Errorf("issuing certificate for %s: %w", subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalCertificateToPEM(cert)
}

// Rekor is a test transparency log key standing in for Rekor's: it signs the entry timestamps
// (SETs) of the bundles that offline verification checks.
type Rekor struct {
	// PublicPEM is the log's public key: what a trust root's rekor.pub holds.
	PublicPEM []byte

	key   *ecdsa.PrivateKey
	logID string
}

// NewRekor creates a log key.
func NewRekor() (*Rekor, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	id, err := cosign.GetTransparencyLogID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Rekor{PublicPEM: pub, key: key, logID: id}, nil
}

// bundle returns the Rekor bundle of a hashedrekord entry for (payload, sig, certPEM), as
// `cosign sign` attaches after uploading to Rekor.
func (r *Rekor) bundle(payloadBytes []byte, b64sig string, certPEM []byte) (*bundle.RekorBundle, error) {
	sum := sha256.Sum256(payloadBytes)
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])}},
			"signature": map[string]any{
				"content":   b64sig,
				"publicKey": map[string]string{"content": base64.StdEncoding.EncodeToString(certPEM)},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	p := bundle.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: time.Now().Unix(),
		LogIndex:       1,
		LogID:          r.logID,
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	canonical, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(canonical)
	set, err := ecdsa.SignASN1(rand.Reader, r.key, digest[:])
	if err != nil {
		return nil, err
	}
	return &bundle.RekorBundle{SignedEntryTimestamp: set, Payload: p}, nil
}

// SignKeyless signs d as keyless `cosign sign` does: an ephemeral key, a certificate from f
// for (issuer, subject) attached with its chain, and, when rekor is not nil, the Rekor bundle
// that lets verifiers check log inclusion offline. The signature is stored next to earlier
// ones, in the sha256-<hex>.sig image, through cosign's own OCI packages.
func (r *Registry) SignKeyless(ctx context.Context, d name.Digest, f *Fulcio, issuer, subject string, rekor *Rekor) error {
	if err := r.own(d); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	signer, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return err
	}
	payloadBytes, err := (&payload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := signer.SignMessage(bytes.NewReader(payloadBytes))
	if err != nil {
		return err
	}
	b64sig := base64.StdEncoding.EncodeToString(raw)
	certPEM, err := f.issue(&key.PublicKey, issuer, subject)
	if err != nil {
		return err
	}
	opts := []static.Option{static.WithCertChain(certPEM, f.ChainPEM)}
	if rekor != nil {
		b, err := rekor.bundle(payloadBytes, b64sig, certPEM)
		if err != nil {
			return fmt.Errorf("making the Rekor bundle: %w", err)
		}
		opts = append(opts, static.WithBundle(b))
	}
	sig, err := static.NewSignature(payloadBytes, b64sig, opts...)
	if err != nil {
		return err
	}
	ro := ociremote.WithRemoteOptions(remote.WithContext(ctx), remote.WithAuth(authn.Anonymous))
	se, err := ociremote.SignedEntity(d, ro)
	if err != nil {
		return fmt.Errorf("reading %s: %w", d, err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(d.Repository, se, ro); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", d, err)
	}
	return nil
}
