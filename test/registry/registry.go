package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is an in-memory OCI registry served on 127.0.0.1.
// It is safe for concurrent use.
type Registry struct {
	// handler owns all registry content; it outlives the HTTP servers so
	// that Stop/Restart keep images and signatures.
	handler http.Handler

	requests         atomic.Int64
	manifestRequests atomic.Int64
	// manifestDelay, in nanoseconds, makes manifest requests as slow as a distant registry.
	manifestDelay atomic.Int64

	mu     sync.Mutex
	addr   string        // "127.0.0.1:PORT", fixed at start so Restart reuses it
	srv    *http.Server  // nil while stopped
	done   chan struct{} // closed once srv.Serve has returned
	closed bool
}

// Start serves a new, empty registry on a random free loopback port.
func Start() (*Registry, error) { return StartAt("127.0.0.1:0") }

// StartAt serves a new, empty registry on addr, which must be an IPv4
// loopback address such as "127.0.0.1:5001" (port 0 picks a free port).
// Other hosts are refused because ggcr and cosign only speak plain HTTP to
// loopback; anything else would make clients try HTTPS.
func StartAt(addr string) (*Registry, error) { return startAt(addr, true) }

// StartWithoutReferrers serves a new, empty registry on a free loopback port
// that has no OCI 1.1 referrers API, as many registries in use: clients fall
// back to the referrers tag sha256-<hex> (and cosign v3 writes its bundles there).
func StartWithoutReferrers() (*Registry, error) { return startAt("127.0.0.1:0", false) }

func startAt(addr string, referrers bool) (*Registry, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("registry address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("registry address %q: host must be an IPv4 loopback address like 127.0.0.1", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for registry on %s: %w", addr, err)
	}
	r := &Registry{addr: l.Addr().String()}
	// Referrers support makes it behave like a current OCI 1.1 registry;
	// the per-request log is discarded because it drowns test output.
	inner := ggcrregistry.New(
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
		ggcrregistry.WithReferrersSupport(referrers),
	)
	r.handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Counted before serving, so a client that got a response has
		// always been counted.
		r.requests.Add(1)
		if (req.Method == http.MethodGet || req.Method == http.MethodHead) && isManifestPath(req.URL.Path) {
			r.manifestRequests.Add(1)
			if d := time.Duration(r.manifestDelay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-req.Context().Done():
					return
				}
			}
		}
		inner.ServeHTTP(w, req)
	})
	r.serve(l)
	return r, nil
}

// isManifestPath reports whether p is /v2/<repo>/manifests/<ref>.
func isManifestPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	return len(parts) >= 3 && parts[len(parts)-2] == "manifests"
}

// serve starts an HTTP server on l; r.mu must be held or r unpublished.
func (r *Registry) serve(l net.Listener) {
	srv := &http.Server{Handler: r.handler, ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve only returns once the listener is closed by Stop/Close.
		_ = srv.Serve(l)
	}()
	r.srv, r.done = srv, done
}

// Host returns the registry host, "127.0.0.1:PORT", for use in references.
func (r *Registry) Host() string { return r.addr }

// Handler returns the (counting) registry handler, for mounting it in
// another server, e.g. an httptest.Server with TLS.
func (r *Registry) Handler() http.Handler { return r.handler }

// Stop stops serving: the port is closed, so clients get "connection
// refused", and open connections are dropped. Content is kept for Restart.
// Stopping a stopped registry is a no-op.
func (r *Registry) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopLocked()
}

func (r *Registry) stopLocked() error {
	if r.srv == nil {
		return nil
	}
	err := r.srv.Close()
	<-r.done // the port is only free once Serve has returned
	r.srv, r.done = nil, nil
	if err != nil {
		return fmt.Errorf("stopping registry %s: %w", r.addr, err)
	}
	return nil
}

// Restart serves the same content on the same address again. It fails if
// the registry was closed, or if another process took the port meanwhile.
// Restarting a running registry is a no-op.
func (r *Registry) Restart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("restarting registry %s: %w", r.addr, net.ErrClosed)
	}
	if r.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("restarting registry %s: %w", r.addr, err)
	}
	r.serve(l)
	return nil
}

// Close stops the registry for good. It is safe to call more than once.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.stopLocked()
}

// Requests returns the number of HTTP requests served so far, on any path.
// Note that every ggcr/cosign operation without a reused transport starts
// with a GET /v2/ ping, which is counted too.
func (r *Registry) Requests() int64 { return r.requests.Load() }

// ManifestRequests returns the number of GET and HEAD requests to
// /v2/<repo>/manifests/<ref>, i.e. digest resolutions and manifest pulls.
func (r *Registry) ManifestRequests() int64 { return r.manifestRequests.Load() }

// SetManifestDelay makes every manifest request take at least d (0: none), as a registry far
// away would, so that concurrent lookups of one image overlap.
func (r *Registry) SetManifestDelay(d time.Duration) { r.manifestDelay.Store(int64(d)) }

// ResetCounters sets Requests and ManifestRequests back to zero.
func (r *Registry) ResetCounters() {
	r.requests.Store(0)
	r.manifestRequests.Store(0)
}

// remoteOptions are the ggcr options for talking to this registry;
// anonymous auth keeps the harness independent of ~/.docker/config.json.
func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(authn.Anonymous)}
}

// own rejects references to other registries, so that a mistaken reference
// never makes the harness push to or sign in a real registry.
func (r *Registry) own(ref name.Reference) error {
	if got := ref.Context().RegistryStr(); got != r.addr {
		return fmt.Errorf("%s is not in test registry %s", ref, r.addr)
	}
	return nil
}

// tag parses repo:tag in this registry; the tag is required, not "latest"
// by default, because tests should say which tag they mean.
func (r *Registry) tag(repo, tag string) (name.Tag, error) {
	if repo == "" || tag == "" {
		return name.Tag{}, fmt.Errorf("repository %q and tag %q must both be set", repo, tag)
	}
	t, err := name.NewTag(r.addr+"/"+repo+":"+tag, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("reference %s/%s:%s: %w", r.addr, repo, tag, err)
	}
	return t, nil
}

// randomImage is a one-layer random image whose config names platform p,
// so platform-aware clients see a proper single-platform image.
func randomImage(p v1.Platform) (v1.Image, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return nil, fmt.Errorf("generating random image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading random image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting platform %s on random image: %w", p, err)
	}
	return img, nil
}

// PushRandomImage pushes a small random linux/amd64 image as repo:tag
// (repo like "shop/web") and returns its digest reference, e.g.
// 127.0.0.1:PORT/shop/web@sha256:...
func (r *Registry) PushRandomImage(ctx context.Context, repo, tag string) (name.Digest, error) {
	t, err := r.tag(repo, tag)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := randomImage(v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return name.Digest{}, fmt.Errorf("image for %s: %w", t, err)
	}
	return push(ctx, t, img)
}

// push writes img as t and returns its digest reference.
func push(ctx context.Context, t name.Tag, img v1.Image) (name.Digest, error) {
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("digest of image for %s: %w", t, err)
	}
	if err := remote.Write(t, img, remoteOptions(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing image %s: %w", t, err)
	}
	return t.Context().Digest(h.String()), nil
}

// indexPlatforms are the platforms of PushRandomIndex, the usual pair.
var indexPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// PushRandomIndex pushes a multi-arch index (linux/amd64, linux/arm64) of
// random images as repo:tag. It returns the index digest and the
// per-platform image digests keyed by platform ("linux/amd64", ...).
func (r *Registry) PushRandomIndex(ctx context.Context, repo, tag string) (name.Digest, map[string]name.Digest, error) {
	t, err := r.tag(repo, tag)
	if err != nil {
		return name.Digest{}, nil, err
	}
	// A Docker manifest list, matching the Docker media types of the
	// random images and what `docker buildx` pushes.
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	platforms := make(map[string]name.Digest, len(indexPlatforms))
	for _, p := range indexPlatforms {
		img, err := randomImage(p)
		if err != nil {
			return name.Digest{}, nil, fmt.Errorf("%s image for %s: %w", p, t, err)
		}
		h, err := img.Digest()
		if err != nil {
			return name.Digest{}, nil, fmt.Errorf("digest of %s image for %s: %w", p, t, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
		platforms[p.String()] = t.Context().Digest(h.String())
	}
	h, err := idx.Digest()
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("digest of index for %s: %w", t, err)
	}
	// WriteIndex pushes the child images too.
	if err := remote.WriteIndex(t, idx, remoteOptions(ctx)...); err != nil {
		return name.Digest{}, nil, fmt.Errorf("pushing index %s: %w", t, err)
	}
	return t.Context().Digest(h.String()), platforms, nil
}

// Tag points tag in d's repository at d, which must already be pushed;
// this simulates a tag moving during a rollout. d may be an image or index.
func (r *Registry) Tag(ctx context.Context, d name.Digest, tag string) error {
	if err := r.own(d); err != nil {
		return err
	}
	if tag == "" {
		return errors.New("tag must be set")
	}
	t, err := name.NewTag(d.Context().String()+":"+tag, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("tag %q for %s: %w", tag, d, err)
	}
	desc, err := remote.Get(d, remoteOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("getting %s to tag it %s: %w", d, t, err)
	}
	if err := remote.Tag(t, desc, remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("tagging %s as %s: %w", d, t, err)
	}
	return nil
}
