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
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v2/pkg/cosign"
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

// Sign signs the image (or index) digest d with k exactly as
// `cosign sign --key cosign.key --tlog-upload=false -y <d>` would: the
// simple-signing payload is signed and stored as a layer of the OCI image
// tagged sha256-<hex>.sig in d's repository, next to earlier signatures.
// Only the given manifest is signed, not the children of an index (no -r).
//
// It calls sign.SignCmd, cosign's CLI implementation, rather than the
// lower-level pkg APIs because the payload/upload logic it uses lives in
// cosign's internal packages; going through SignCmd is the only way to be
// byte-for-byte what `cosign sign` produces. Its quirks: it builds its own
// context from RootOptions.Timeout (so ctx only contributes its deadline
// and an up-front cancellation check), it reads the key from a file (so
// the key is written to a private temp file for the call), and it prints
// "Pushing signature to: ..." on stderr.
func (r *Registry) Sign(ctx context.Context, d name.Digest, k *Key) error {
	if k == nil || len(k.PrivatePEM) == 0 {
		return fmt.Errorf("signing %s: no private key", d)
	}
	if err := r.own(d); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("signing %s: %w", d, err)
	}
	timeout := options.DefaultTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return fmt.Errorf("signing %s: %w", d, context.DeadlineExceeded)
		}
	}

	dir, err := os.MkdirTemp("", "fixity-cosign-key-")
	if err != nil {
		return fmt.Errorf("signing %s: temp dir for key: %w", d, err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	keyPath := filepath.Join(dir, "cosign.key")
	if err := os.WriteFile(keyPath, k.PrivatePEM, 0o600); err != nil {
		return fmt.Errorf("signing %s: writing key: %w", d, err)
	}

	ko := options.KeyOpts{
		KeyRef: keyPath,
		// Like COSIGN_PASSWORD; a copy in case cosign wipes it after use.
		PassFunc:         func(bool) ([]byte, error) { return bytes.Clone(k.Password), nil },
		SkipConfirmation: true,
	}
	so := options.SignOptions{
		Key:              keyPath,
		Upload:           true,  // --upload default
		TlogUpload:       false, // --tlog-upload=false: no Rekor, so no network
		SkipConfirmation: true,
		Registry: options.RegistryOptions{
			// Overrides cosign's default keychain lookup: the test registry
			// is anonymous, and docker credentials must not leak into tests.
			RegistryClientOpts: []remote.Option{remote.WithAuth(authn.Anonymous)},
		},
	}
	if err := sign.SignCmd(&options.RootOptions{Timeout: timeout}, ko, so, []string{d.String()}); err != nil {
		return fmt.Errorf("cosign sign %s: %w", d, err)
	}
	return nil
}
