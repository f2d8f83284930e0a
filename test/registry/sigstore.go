package registry

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// Sigstore is a test sigstore for keyless bundles: sigstore-go's VirtualSigstore for the Rekor
// log and the timestamp authority, and a Fulcio CA made with the same package's helpers, so
// that certificates can be issued at any time (an expired one, say).
type Sigstore struct {
	vs        *ca.VirtualSigstore
	fulcio    *x509.Certificate
	inter     *x509.Certificate
	interKey  *ecdsa.PrivateKey
	createdAt time.Time
}

// NewSigstore creates a test sigstore.
func NewSigstore() (*Sigstore, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, err
	}
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		return nil, err
	}
	// As ca.GenerateFulcioIntermediate, but in service since the root's start (5 hours ago),
	// so that certificates issued hours ago chain.
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fixity-test-fulcio-intermediate"},
		NotBefore: rootCert.NotBefore, NotAfter: rootCert.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Sigstore{vs: vs, fulcio: rootCert, inter: inter, interKey: interKey, createdAt: time.Now()}, nil
}

// TrustedRootJSON is the trust root of s in sigstore's trusted_root.json format, as
// `cosign trusted-root create` writes it: the Fulcio CA, the Rekor log and the timestamp
// authority (no CT log: the test certificates carry no SCTs).
func (s *Sigstore) TrustedRootJSON() ([]byte, error) {
	logs := map[string]*root.TransparencyLog{}
	for id, l := range s.vs.RekorLogs() {
		c := *l
		// VirtualSigstore keys its logs by the hex log ID and keeps that text as the ID; the
		// JSON holds the raw key ID, so the hex must be decoded to survive the round trip.
		raw, err := hex.DecodeString(id)
		if err != nil {
			return nil, err
		}
		c.ID = raw
		c.ValidityPeriodStart = s.createdAt.Add(-24 * time.Hour)
		c.ValidityPeriodEnd = time.Time{}
		logs[id] = &c
	}
	fulcio := &root.FulcioCertificateAuthority{
		Root: s.fulcio, Intermediates: []*x509.Certificate{s.inter},
		ValidityPeriodStart: s.createdAt.Add(-24 * time.Hour), URI: "https://fulcio.localhost",
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fulcio}, nil, s.vs.TimestampingAuthorities(), logs)
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}

// Keyless says what a keyless bundle holds.
type Keyless struct {
	// Issuer and Subject are the OIDC identity in the certificate (the subject as an email SAN).
	Issuer, Subject string
	// PredicateType of the statement; empty is a cosign v3 signature
	// (https://sigstore.dev/cosign/sign/v1).
	PredicateType string
	// Predicate is the statement's predicate, JSON; empty is {}.
	Predicate []byte
	// IssuedAt is when the 10-minute certificate starts; zero is now.
	IssuedAt time.Time
	// LoggedAt is the Rekor entry's integrated time; zero is a minute after IssuedAt.
	LoggedAt time.Time
	// Timestamp adds an RFC 3161 timestamp from the timestamp authority.
	Timestamp bool
	// Tamper changes the statement after signing, as an attacker editing a bundle would.
	Tamper bool
}

// SignKeylessBundle stores a keyless sigstore bundle for d as cosign v3 does (an OCI referrer,
// or the referrers tag): an in-toto statement about d in a DSSE envelope, signed with an
// ephemeral key certified by s's Fulcio CA, with its Rekor entry (inclusion proof and promise).
func (r *Registry) SignKeylessBundle(ctx context.Context, d name.Digest, s *Sigstore, k Keyless) error {
	if err := r.own(d); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	if k.PredicateType == "" {
		k.PredicateType = types.CosignSignPredicateType
	}
	if len(k.Predicate) == 0 {
		k.Predicate = []byte("{}")
	}
	if k.IssuedAt.IsZero() {
		k.IssuedAt = time.Now()
	}
	if k.LoggedAt.IsZero() {
		k.LoggedAt = k.IssuedAt.Add(time.Minute)
	}
	h, err := hex.DecodeString(d.DigestStr()[len("sha256:"):])
	if err != nil {
		return err
	}
	statement, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"name": d.Context().Name(), "digest": map[string]string{"sha256": hex.EncodeToString(h)}}},
		"predicateType": k.PredicateType,
		"predicate":     json.RawMessage(k.Predicate),
	})
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cert, err := ca.GenerateLeafCert(k.Subject, k.Issuer, k.IssuedAt, key, s.inter, s.interKey)
	if err != nil {
		return err
	}
	signer, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return err
	}
	es, err := dsse.NewEnvelopeSigner(&sigdsse.SignerAdapter{SignatureSigner: signer, Pub: &key.PublicKey})
	if err != nil {
		return err
	}
	env, err := es.SignPayload(ctx, "application/vnd.in-toto+json", statement)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		return err
	}
	entry, err := s.vs.GenerateTlogEntry(cert, env, sig, k.LoggedAt.Unix(), true)
	if err != nil {
		return fmt.Errorf("logging the entry: %w", err)
	}
	tle, err := s.protoEntry(entry)
	if err != nil {
		return err
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return err
	}
	if k.Tamper {
		var st map[string]any
		if err := json.Unmarshal(payload, &st); err != nil {
			return err
		}
		st["predicate"] = map[string]any{"tampered": true}
		if payload, err = json.Marshal(st); err != nil {
			return err
		}
	}
	vm := &protobundle.VerificationMaterial{
		Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: cert.Raw}},
		TlogEntries: []*protorekor.TransparencyLogEntry{tle},
	}
	if k.Timestamp {
		tsr, err := s.vs.TimestampResponse(sig)
		if err != nil {
			return err
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: tsr}},
		}
	}
	pb := &protobundle.Bundle{
		MediaType:            "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType,
			Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	raw, err := protojson.Marshal(pb)
	if err != nil {
		return err
	}
	if err := ociremote.WriteAttestationNewBundleFormat(d, raw, k.PredicateType, ociremote.WithRemoteOptions(remoteOptions(ctx)...)); err != nil {
		return fmt.Errorf("writing the bundle of %s: %w", d, err)
	}
	return nil
}

// protoEntry is entry as a bundle holds it: with its kind and its inclusion promise (the log's
// signed entry timestamp, signed again here as VirtualSigstore does: tlog.Entry keeps it private).
func (s *Sigstore) protoEntry(entry *tlog.Entry) (*protorekor.TransparencyLogEntry, error) {
	tle := entry.TransparencyLogEntry()
	set, err := s.vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		return nil, err
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
	return tle, nil
}
