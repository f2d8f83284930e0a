package images

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/utils/lru"
)

// Parse parses an image reference as the kubelet does: "nginx" is docker.io/library/nginx:latest.
//
// Parsed references are kept (they are immutable values): parsing validates every part of the
// name and was a tenth of an admission's own work with a cached verdict.
func Parse(image string) (name.Reference, error) {
	if ref, ok := parsed.Get(image); ok {
		return ref.(name.Reference), nil
	}
	if strings.TrimSpace(image) == "" {
		return nil, fmt.Errorf("image is empty")
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, fmt.Errorf("image %q is not a valid image reference: %w", image, err)
	}
	parsed.Add(image, ref)
	return ref, nil
}

// parsed holds the references of the images seen lately.
var parsed = lru.New(4096)

// Pinned returns ref as repo@digest when it names a digest (repo:tag@digest counts: the
// runtime pulls the digest).
func Pinned(ref name.Reference) (name.Digest, bool) {
	d, ok := ref.(name.Digest)
	return d, ok
}

// WithDigest returns the reference to digest in ref's repository.
func WithDigest(ref name.Reference, digest string) (name.Digest, error) {
	return name.NewDigest(ref.Context().Name() + "@" + digest)
}

// Allowed reports whether image is under one of prefixes. An entry matches the image as
// written or fully qualified (nginx is index.docker.io/library/nginx, also written
// docker.io/library/nginx). A prefix that does not end in "/" must end at a path, tag or
// digest boundary, so "ghcr.io/acme" does not admit "ghcr.io/acme-evil/app".
func Allowed(image string, ref name.Reference, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	full := ref.Context().Name()
	forms := []string{image, full + strings.TrimPrefix(image, stripRepo(image))}
	if rest, ok := strings.CutPrefix(full, name.DefaultRegistry+"/"); ok {
		forms = append(forms, "docker.io/"+rest)
	}
	for _, p := range prefixes {
		for _, f := range forms {
			if underPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// stripRepo returns the repository part of an image as written (before :tag or @digest).
func stripRepo(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		image = image[:i]
	}
	return image
}

func underPrefix(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	if strings.HasSuffix(prefix, "/") || len(s) == len(prefix) {
		return true
	}
	return strings.ContainsRune("/:@", rune(s[len(prefix)]))
}
