package images

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Keys a trust root (ConfigMap or Secret) may hold.
const (
	// TrustRootJSON is sigstore's trusted root, as `cosign trusted-root create` writes it: Fulcio
	// CAs, Rekor and CT logs, timestamp authorities. When present the other keys are not read.
	TrustRootJSON = "trusted_root.json"
	// TrustRootFulcio holds the Fulcio root certificate(s) and any intermediates, PEM.
	TrustRootFulcio = "fulcio.pem"
	// TrustRootRekor holds the Rekor public key(s), PEM; needed for transparencyLog Require.
	TrustRootRekor = "rekor.pub"
	// TrustRootCTLog holds the certificate transparency log key(s), PEM; without any CT log
	// embedded SCTs are not checked.
	TrustRootCTLog = "ctlog.pub"
)

// TrustRoot is a parsed trust root: the sigstore-go trusted material that both signature
// formats are verified against, offline.
type TrustRoot struct {
	Material root.TrustedMaterial
	// Source says which key it was read from, for messages.
	Source string
}

// ParseTrustRoot reads a trust root from the data of a ConfigMap or Secret: trusted_root.json if
// present, else the older PEM keys. needFulcio is set for keyless authorities, which cannot work
// without a certificate authority. Nothing is fetched: verification stays offline.
func ParseTrustRoot(data map[string][]byte, needFulcio bool) (*TrustRoot, error) {
	if raw, ok := data[TrustRootJSON]; ok {
		tr, err := root.NewTrustedRootFromJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not a sigstore trusted root: %w", TrustRootJSON, err)
		}
		if needFulcio && len(tr.FulcioCertificateAuthorities()) == 0 {
			return nil, fmt.Errorf("%q has no certificateAuthorities: keyless signatures cannot be verified", TrustRootJSON)
		}
		return &TrustRoot{Material: tr, Source: TrustRootJSON}, nil
	}
	var cas []root.CertificateAuthority
	if pemBytes := data[TrustRootFulcio]; len(pemBytes) > 0 || needFulcio {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM(pemBytes)
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate found")
		}
		if err != nil {
			return nil, fmt.Errorf("needs %q (sigstore's trusted root) or %q with the Fulcio root certificate(s) in PEM: %w", TrustRootJSON, TrustRootFulcio, err)
		}
		var roots, intermediates []*x509.Certificate
		for _, c := range certs {
			if c.CheckSignatureFrom(c) == nil {
				roots = append(roots, c)
			} else {
				intermediates = append(intermediates, c)
			}
		}
		if len(roots) == 0 {
			return nil, fmt.Errorf("%q has no self-signed root certificate", TrustRootFulcio)
		}
		for _, r := range roots {
			cas = append(cas, &root.FulcioCertificateAuthority{Root: r, Intermediates: intermediates})
		}
	}
	rekor, err := logKeys(data[TrustRootRekor])
	if err != nil {
		return nil, fmt.Errorf("%q: %w", TrustRootRekor, err)
	}
	ctlogs, err := logKeys(data[TrustRootCTLog])
	if err != nil {
		return nil, fmt.Errorf("%q: %w", TrustRootCTLog, err)
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ctlogs, nil, rekor)
	if err != nil {
		return nil, err
	}
	return &TrustRoot{Material: tr, Source: "PEM keys"}, nil
}

// logKeys parses PEM public keys of transparency logs into sigstore-go's form, keyed by log ID
// (the hex SHA-256 of the key's DER, as Rekor and CT compute it).
func logKeys(pemBytes []byte) (map[string]*root.TransparencyLog, error) {
	out := map[string]*root.TransparencyLog{}
	for rest := pemBytes; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("not a usable public key: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		id := sha256.Sum256(der)
		out[fmt.Sprintf("%x", id)] = &root.TransparencyLog{
			ID: id[:], HashFunc: crypto.SHA256, PublicKey: pub, SignatureHashFunc: crypto.SHA256,
			// A bare key says nothing of when the log was in service: any time counts.
			ValidityPeriodStart: time.Unix(0, 0),
		}
	}
	if len(pemBytes) > 0 && len(out) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return out, nil
}
