package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Defaults for Registry.
const (
	// DefaultTimeout bounds one registry operation (a tag lookup, fetching signatures). It stays
	// well inside the webhooks' 10s timeoutSeconds so that a registry that hangs gives the user
	// a denial naming it, not an opaque webhook timeout.
	DefaultTimeout = 4 * time.Second
	// DefaultMaxResponseBytes caps every registry response body. Manifests and signature
	// layers are kilobytes; anything bigger is a broken or hostile registry.
	DefaultMaxResponseBytes = 4 << 20
)

// Registry talks to OCI registries through go-containerregistry, with a timeout per operation
// and a cap on response sizes.
type Registry struct {
	// Timeout bounds one operation; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes caps response bodies; zero means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Transport is the base transport; nil means remote.DefaultTransport.
	Transport http.RoundTripper
}

func (r *Registry) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// Options returns the remote options for one operation under ctx.
func (r *Registry) Options(ctx context.Context, kc authn.Keychain) []remote.Option {
	base := r.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	limit := r.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(&limitedTransport{base: base, limit: limit}),
	}
}

// Resolve returns the digest ref points at now: ref itself when it is pinned, else what the
// registry says its tag points at.
func (r *Registry) Resolve(ctx context.Context, ref name.Reference, kc authn.Keychain) (name.Digest, error) {
	if d, ok := Pinned(ref); ok {
		return d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	desc, err := remote.Head(ref, r.Options(ctx, kc)...)
	if err != nil {
		var terr *transport.Error
		// Some registries do not answer HEAD on manifests; GET is what a pull does.
		if errors.As(err, &terr) && terr.StatusCode == http.StatusMethodNotAllowed {
			d, gerr := remote.Get(ref, r.Options(ctx, kc)...)
			if gerr != nil {
				return name.Digest{}, Explain(ref.Context().RegistryStr(), gerr)
			}
			return WithDigest(ref, d.Digest.String())
		}
		return name.Digest{}, Explain(ref.Context().RegistryStr(), err)
	}
	return WithDigest(ref, desc.Digest.String())
}

// Explain rewrites a registry error into a short cause a developer can act on, keeping the
// original wrapped.
func Explain(registry string, err error) error {
	var (
		terr  *transport.Error
		nerr  net.Error
		operr *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()):
		return fmt.Errorf("registry %s did not answer in time: %w", registry, err)
	case errors.As(err, &operr):
		return fmt.Errorf("registry %s cannot be reached: %w", registry, err)
	case IsNotFound(err):
		return fmt.Errorf("not found in registry %s: %w", registry, err)
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		return fmt.Errorf("registry %s refused access (check the pod's imagePullSecrets and its service account's): %w", registry, err)
	}
	return fmt.Errorf("registry %s: %w", registry, err)
}

// IsNotFound reports whether err is a registry's answer that the manifest does not exist, as
// opposed to a registry that could not answer.
func IsNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// limitedTransport fails responses bigger than limit instead of reading them whole.
type limitedTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.limit {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("response from %s is %d bytes, over the %d byte limit", req.URL.Redacted(), resp.ContentLength, t.limit)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.limit, url: req.URL.Redacted(), limit: t.limit}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left, limit int64
	url         string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("response from %s is over the %d byte limit", b.url, b.limit)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left <= 0 && err == nil {
		// Bodies of exactly the limit end here; one more byte means over it.
		var one [1]byte
		if m, _ := b.ReadCloser.Read(one[:]); m > 0 {
			return n, fmt.Errorf("response from %s is over the %d byte limit", b.url, b.limit)
		}
		return n, io.EOF
	}
	return n, err
}
