package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/cmd/cosign/cli/attest"
	"github.com/sigstore/cosign/v3/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v3/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v3/pkg/cosign"
)

// Key is a cosign key pair as `cosign generate-key-pair` writes it:
// PrivatePEM is cosign.key (an encrypted "ENCRYPTED SIGSTORE PRIVATE KEY"),
// PublicPEM is cosign.pub ("PUBLIC KEY", ECDSA P-256) and Password decrypts
// PrivatePEM (what COSIGN_PASSWORD would hold).
type Key struct {
	PrivatePEM, PublicPEM, Password []byte
}

// GenerateKey creates a fresh ECDSA P-256 key pair with a random password,
// via cosign.GenerateKeyPair like `cosign generate-key-pair` does.
func GenerateKey() (*Key, error) {
	// A non-empty password so that signing really decrypts the key.
	pw := []byte(rand.Text())
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return bytes.Clone(pw), nil })
	if err != nil {
		return nil, fmt.Errorf("generating cosign key pair: %w", err)
	}
	return &Key{PrivatePEM: kb.PrivateBytes, PublicPEM: kb.PublicBytes, Password: pw}, nil
}

// Sign signs the image (or index) digest d with k exactly as cosign v2's
// `cosign sign --key cosign.key --tlog-upload=false -y <d>` (cosign v3 with
// --new-bundle-format=false) would: the simple-signing payload is signed and
// stored as a layer of the OCI image tagged sha256-<hex>.sig in d's
// repository, next to earlier signatures (the legacy format). Only the given
// manifest is signed, not the children of an index (no -r).
func (r *Registry) Sign(ctx context.Context, d name.Digest, k *Key) error {
	return r.sign(ctx, d, k, false)
}

// SignBundle signs d with k as cosign v3's default `cosign sign --key cosign.key
// --tlog-upload=false -y <d>` does: an in-toto statement of predicate type
// https://sigstore.dev/cosign/sign/v1 in a DSSE envelope, in a sigstore bundle
// stored as an OCI 1.1 referrer of d (or in the referrers fallback tag when the
// registry has no referrers API).
func (r *Registry) SignBundle(ctx context.Context, d name.Digest, k *Key) error {
	return r.sign(ctx, d, k, true)
}

// sign calls sign.SignCmd, cosign's CLI implementation, rather than the
// lower-level pkg APIs because the payload/upload logic it uses lives in
// cosign's internal packages; going through SignCmd is the only way to be
// byte-for-byte what `cosign sign` produces. Its quirks: it reads the key from
// a file (so the key is written to a private temp file for the call), and it
// prints "Pushing signature to: ..." on stderr.
func (r *Registry) sign(ctx context.Context, d name.Digest, k *Key, bundle bool) error {
	keyPath, cleanup, err := r.prepareKey(ctx, d, k)
	if err != nil {
		return err
	}
	defer cleanup()
	ko := keyOpts(keyPath, k)
	ko.NewBundleFormat = bundle
	so := options.SignOptions{
		Key:              keyPath,
		Upload:           true,  // --upload default
		TlogUpload:       false, // --tlog-upload=false: no Rekor, so no network
		SkipConfirmation: true,
		NewBundleFormat:  bundle,
		Registry:         anonymousRegistry(),
	}
	if err := sign.SignCmd(ctx, &options.RootOptions{Timeout: timeoutOf(ctx)}, ko, so, []string{d.String()}); err != nil {
		return fmt.Errorf("cosign sign %s: %w", d, err)
	}
	return nil
}

// Attest attaches an in-toto attestation of predicateType with predicate (JSON)
// to d, signed with k, as cosign v3's default `cosign attest --key cosign.key
// --type <predicateType> --predicate <file> --tlog-upload=false -y <d>` does:
// a sigstore bundle stored as an OCI referrer of d.
func (r *Registry) Attest(ctx context.Context, d name.Digest, k *Key, predicateType string, predicate []byte) error {
	return r.attest(ctx, d, k, predicateType, predicate, true)
}

// AttestLegacy attaches the attestation as cosign v2's `cosign attest` did (cosign v3 with
// --new-bundle-format=false): a DSSE envelope layer in the sha256-<hex>.att tag.
func (r *Registry) AttestLegacy(ctx context.Context, d name.Digest, k *Key, predicateType string, predicate []byte) error {
	return r.attest(ctx, d, k, predicateType, predicate, false)
}

func (r *Registry) attest(ctx context.Context, d name.Digest, k *Key, predicateType string, predicate []byte, bundle bool) error {
	keyPath, cleanup, err := r.prepareKey(ctx, d, k)
	if err != nil {
		return err
	}
	defer cleanup()
	predicatePath := filepath.Join(filepath.Dir(keyPath), "predicate.json")
	if err := os.WriteFile(predicatePath, predicate, 0o600); err != nil {
		return fmt.Errorf("attesting %s: writing predicate: %w", d, err)
	}
	ko := keyOpts(keyPath, k)
	ko.NewBundleFormat = bundle
	c := &attest.AttestCommand{
		KeyOpts:         ko,
		RegistryOptions: anonymousRegistry(),
		PredicatePath:   predicatePath,
		PredicateType:   predicateType,
		Timeout:         timeoutOf(ctx),
		TlogUpload:      false,
		RekorEntryType:  "dsse",
	}
	if err := c.Exec(ctx, d.String()); err != nil {
		return fmt.Errorf("cosign attest %s: %w", d, err)
	}
	return nil
}

// prepareKey checks d and writes k's private key to a private temp file, as
// cosign's CLI reads keys from files.
func (r *Registry) prepareKey(ctx context.Context, d name.Digest, k *Key) (string, func(), error) {
	if k == nil || len(k.PrivatePEM) == 0 {
		return "", nil, fmt.Errorf("signing %s: no private key", d)
	}
	if err := r.own(d); err != nil {
		return "", nil, fmt.Errorf("signing: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("signing %s: %w", d, err)
	}
	if timeoutOf(ctx) <= 0 {
		return "", nil, fmt.Errorf("signing %s: %w", d, context.DeadlineExceeded)
	}
	dir, err := os.MkdirTemp("", "fixity-cosign-key-")
	if err != nil {
		return "", nil, fmt.Errorf("signing %s: temp dir for key: %w", d, err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	keyPath := filepath.Join(dir, "cosign.key")
	if err := os.WriteFile(keyPath, k.PrivatePEM, 0o600); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("signing %s: writing key: %w", d, err)
	}
	return keyPath, cleanup, nil
}

func keyOpts(keyPath string, k *Key) options.KeyOpts {
	return options.KeyOpts{
		KeyRef: keyPath,
		// Like COSIGN_PASSWORD; a copy in case cosign wipes it after use.
		PassFunc:         func(bool) ([]byte, error) { return bytes.Clone(k.Password), nil },
		SkipConfirmation: true,
	}
}

// anonymousRegistry overrides cosign's default keychain lookup: the test
// registry is anonymous, and docker credentials must not leak into tests.
func anonymousRegistry() options.RegistryOptions {
	return options.RegistryOptions{RegistryClientOpts: []remote.Option{remote.WithAuth(authn.Anonymous)}}
}

// timeoutOf is what is left of ctx's deadline, or cosign's default timeout.
func timeoutOf(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return time.Until(deadline)
	}
	return options.DefaultTimeout
}
