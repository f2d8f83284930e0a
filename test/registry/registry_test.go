package registry

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	sigs "github.com/sigstore/cosign/v3/pkg/signature"
)

func start(t *testing.T) *Registry {
	t.Helper()
	r, err := Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func ropts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(authn.Anonymous)}
}

// verify checks ref's signatures against pub the way the operator is
// expected to: key-based, offline (no Rekor), and with the claim verifier
// that binds the signed payload to ref's digest.
func verify(ctx context.Context, t *testing.T, ref name.Reference, pub []byte, claims bool) ([]oci.Signature, error) {
	t.Helper()
	v, err := sigs.LoadPublicKeyRaw(pub, crypto.SHA256)
	if err != nil {
		t.Fatalf("loading public key: %v", err)
	}
	co := &cosign.CheckOpts{
		SigVerifier:        v,
		IgnoreTlog:         true,
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(ropts(ctx)...)},
	}
	if claims {
		co.ClaimVerifier = cosign.SimpleClaimVerifier
	}
	s, _, err := cosign.VerifyImageSignatures(ctx, ref, co)
	return s, err
}

func signatures(ctx context.Context, t *testing.T, d name.Digest) []oci.Signature {
	t.Helper()
	se, err := ociremote.SignedImage(d, ociremote.WithRemoteOptions(ropts(ctx)...))
	if err != nil {
		t.Fatalf("SignedImage(%s): %v", d, err)
	}
	ss, err := se.Signatures()
	if err != nil {
		t.Fatalf("Signatures(%s): %v", d, err)
	}
	l, err := ss.Get()
	if err != nil {
		t.Fatalf("Signatures(%s).Get: %v", d, err)
	}
	return l
}

func TestSignAndVerify(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	d, err := r.PushRandomImage(ctx, "shop/web", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Host() + "/shop/web@sha256:"; !strings.HasPrefix(d.String(), want) {
		t.Fatalf("digest ref %s, want prefix %s", d, want)
	}
	good, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(ctx, d, good); err != nil {
		t.Fatal(err)
	}

	// Stored where `cosign sign` stores it: tag sha256-<hex>.sig in the same repo.
	sigTag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	if _, err := remote.Head(sigTag, ropts(ctx)...); err != nil {
		t.Fatalf("signature tag %s: %v", sigTag, err)
	}

	verified, err := verify(ctx, t, d, good.PublicPEM, true)
	if err != nil {
		t.Fatalf("verify with signing key: %v", err)
	}
	if len(verified) != 1 {
		t.Fatalf("verified %d signatures, want 1", len(verified))
	}

	_, err = verify(ctx, t, d, other.PublicPEM, true)
	var noMatch *cosign.ErrNoMatchingSignatures
	if !errors.As(err, &noMatch) {
		t.Fatalf("verify with another key: err = %v, want ErrNoMatchingSignatures", err)
	}

	// A second signature is appended to the same .sig image, as cosign does.
	if err := r.Sign(ctx, d, other); err != nil {
		t.Fatal(err)
	}
	if n := len(signatures(ctx, t, d)); n != 2 {
		t.Fatalf("%d signatures after signing with two keys, want 2", n)
	}
	if _, err := verify(ctx, t, d, other.PublicPEM, true); err != nil {
		t.Fatalf("verify with second key: %v", err)
	}
}

func TestUnsignedImageHasNoSignatures(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	d, err := r.PushRandomImage(ctx, "shop/web", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(signatures(ctx, t, d)); n != 0 {
		t.Fatalf("unsigned image has %d signatures", n)
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, err = verify(ctx, t, d, k.PublicPEM, true)
	var none *cosign.ErrNoSignaturesFound
	if !errors.As(err, &none) {
		t.Fatalf("verify unsigned image: err = %v, want ErrNoSignaturesFound", err)
	}
}

// Pins a cosign pitfall for the verification code: without a ClaimVerifier,
// VerifyImageSignatures only checks the cryptographic signature, so a
// signature copied from another image verifies.
func TestCosignNeedsClaimVerifier(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	signed, err := r.PushRandomImage(ctx, "shop/web", "signed")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := r.PushRandomImage(ctx, "shop/web", "forged")
	if err != nil {
		t.Fatal(err)
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(ctx, signed, k); err != nil {
		t.Fatal(err)
	}
	from, err := ociremote.SignatureTag(signed)
	if err != nil {
		t.Fatal(err)
	}
	to, err := ociremote.SignatureTag(forged)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(from, ropts(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(to, desc, ropts(ctx)...); err != nil {
		t.Fatal(err)
	}

	if _, err := verify(ctx, t, forged, k.PublicPEM, false); err != nil {
		t.Fatalf("cosign behaviour changed: copied signature no longer verifies without ClaimVerifier: %v", err)
	}
	var noMatch *cosign.ErrNoMatchingSignatures
	if _, err := verify(ctx, t, forged, k.PublicPEM, true); !errors.As(err, &noMatch) {
		t.Fatalf("copied signature with SimpleClaimVerifier: err = %v, want ErrNoMatchingSignatures", err)
	}
}

func TestStopRestartKeepsContent(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	d, err := r.PushRandomImage(ctx, "shop/web", "v1")
	if err != nil {
		t.Fatal(err)
	}
	host := r.Host()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := remote.Get(d, ropts(ctx)...); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("pull from stopped registry: err = %v, want connection refused", err)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if r.Host() != host {
		t.Fatalf("host changed on restart: %s -> %s", host, r.Host())
	}
	desc, err := remote.Get(d, ropts(ctx)...)
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if desc.Digest.String() != d.DigestStr() {
		t.Fatalf("after restart got %s, want %s", desc.Digest, d.DigestStr())
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Restart(); err == nil {
		t.Fatal("Restart after Close succeeded")
	}
}

func TestCounters(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	d, err := r.PushRandomImage(ctx, "shop/web", "v1")
	if err != nil {
		t.Fatal(err)
	}
	r.ResetCounters()
	if r.Requests() != 0 || r.ManifestRequests() != 0 {
		t.Fatalf("after reset: requests=%d manifests=%d", r.Requests(), r.ManifestRequests())
	}

	resp, err := http.Get("http://" + r.Host() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if r.Requests() != 1 || r.ManifestRequests() != 0 {
		t.Fatalf("after GET /v2/: requests=%d manifests=%d, want 1 and 0", r.Requests(), r.ManifestRequests())
	}

	if _, err := remote.Head(d, ropts(ctx)...); err != nil {
		t.Fatal(err)
	}
	if got := r.ManifestRequests(); got != 1 {
		t.Fatalf("after HEAD: manifest requests = %d, want 1", got)
	}
	tag, err := name.NewTag(r.Host() + "/shop/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(tag, ropts(ctx)...); err != nil {
		t.Fatal(err)
	}
	if got := r.ManifestRequests(); got != 2 {
		t.Fatalf("after GET: manifest requests = %d, want 2", got)
	}
	if r.Requests() <= 3 {
		t.Fatalf("requests = %d, want more than the 3 counted calls (each ggcr call pings /v2/ too)", r.Requests())
	}
}

func TestPushRandomIndex(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	idx, platforms, err := r.PushRandomIndex(ctx, "shop/api", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if len(platforms) != 2 {
		t.Fatalf("platforms = %v, want linux/amd64 and linux/arm64", platforms)
	}
	tag, err := name.NewTag(r.Host() + "/shop/api:v2")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag, ropts(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != idx.DigestStr() || !desc.MediaType.IsIndex() {
		t.Fatalf("tag resolves to %s (%s), want index %s", desc.Digest, desc.MediaType, idx.DigestStr())
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		want, ok := platforms[p]
		if !ok {
			t.Fatalf("no digest for %s in %v", p, platforms)
		}
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		// Resolve through the index the way a container runtime would.
		img, err := remote.Image(idx, append(ropts(ctx), remote.WithPlatform(*plat))...)
		if err != nil {
			t.Fatalf("%s from %s: %v", p, idx, err)
		}
		got, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.DigestStr() {
			t.Fatalf("%s resolves to %s, want %s", p, got, want.DigestStr())
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Platform().String() != p {
			t.Fatalf("%s image config says %s", p, cf.Platform())
		}
		if _, err := remote.Head(want, ropts(ctx)...); err != nil {
			t.Fatalf("%s by digest: %v", p, err)
		}
	}
}

func TestTagMoves(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	first, err := r.PushRandomImage(ctx, "shop/web", "stable")
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.PushRandomImage(ctx, "shop/web", "next")
	if err != nil {
		t.Fatal(err)
	}
	if first.DigestStr() == second.DigestStr() {
		t.Fatal("two random images have the same digest")
	}
	if err := r.Tag(ctx, second, "stable"); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(r.Host() + "/shop/web:stable")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag, ropts(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != second.DigestStr() {
		t.Fatalf("stable -> %s, want %s", desc.Digest, second.DigestStr())
	}
}

func TestBadInput(t *testing.T) {
	ctx := t.Context()
	r := start(t)
	if _, err := r.PushRandomImage(ctx, "Shop/Web", "v1"); err == nil {
		t.Error("upper-case repository accepted")
	}
	if _, err := r.PushRandomImage(ctx, "shop/web", ""); err == nil {
		t.Error("empty tag accepted")
	}
	if _, _, err := r.PushRandomIndex(ctx, "", "v1"); err == nil {
		t.Error("empty repository accepted")
	}
	d, err := r.PushRandomImage(ctx, "shop/web", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(ctx, d, nil); err == nil {
		t.Error("Sign with nil key succeeded")
	}
	if err := r.Tag(ctx, d, "not a tag"); err == nil {
		t.Error("invalid tag accepted")
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := name.NewDigest("example.com/shop/web@" + d.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	// Refused up front, so a wrong reference never reaches a real registry.
	if err := r.Sign(ctx, elsewhere, k); err == nil || !strings.Contains(err.Error(), "not in test registry") {
		t.Errorf("Sign of another registry's image: err = %v", err)
	}
	if err := r.Tag(ctx, elsewhere, "v2"); err == nil || !strings.Contains(err.Error(), "not in test registry") {
		t.Errorf("Tag of another registry's image: err = %v", err)
	}
	wrongPW := *k
	wrongPW.Password = []byte("wrong")
	if err := r.Sign(ctx, d, &wrongPW); err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Errorf("Sign with wrong password: err = %v, want a decryption error", err)
	}
	for _, addr := range []string{"0.0.0.0:0", "example.com:5000", "localhost:0", "nonsense"} {
		if r2, err := StartAt(addr); err == nil {
			_ = r2.Close()
			t.Errorf("StartAt(%q) succeeded", addr)
		}
	}
}

func TestStartAt(t *testing.T) {
	r, err := StartAt("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if strings.HasSuffix(r.Host(), ":0") || !strings.HasPrefix(r.Host(), "127.0.0.1:") {
		t.Fatalf("Host() = %q, want 127.0.0.1:<real port>", r.Host())
	}
	if _, err := StartAt(r.Host()); err == nil {
		t.Fatal("second registry on a used address started")
	}
}
