package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Busybox is the static busybox (Debian's busybox-static, installed by hack/build-node.sh) that
// runnable images carry as their whole userland.
const Busybox = "/bin/busybox"

// busyboxApplets are the commands a runnable image links to busybox.
var busyboxApplets = []string{"sh", "sleep", "cat", "echo", "dd", "ls", "id", "touch", "rm", "head", "wc", "mkdir", "true", "hostname"}

// RunnableCommand is what a runnable image runs by default: it stays up, and stops at once on
// SIGTERM (a bare sleep as PID 1 would ignore it for the whole grace period).
var RunnableCommand = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}

// PushRunnableImage pushes a linux/amd64 image that a real runtime can run: busybox and its
// applets in /bin, RunnableCommand as its command, and a file /etc/fixity-image naming repo:tag
// so that every repository and tag gets its own digest. It returns the digest reference.
func (r *Registry) PushRunnableImage(ctx context.Context, repo, tag string) (name.Digest, error) {
	t, err := r.tag(repo, tag)
	if err != nil {
		return name.Digest{}, err
	}
	bin, err := os.ReadFile(Busybox)
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading busybox for %s (hack/build-node.sh installs it): %w", t, err)
	}
	files := []tarEntry{
		{name: "bin/", dir: true},
		{name: "etc/", dir: true},
		{name: "tmp/", dir: true, mode: 0o1777},
		{name: "bin/busybox", data: bin, mode: 0o755},
		{name: "etc/fixity-image", data: []byte(repo + ":" + tag + "\n"), mode: 0o644},
	}
	for _, a := range busyboxApplets {
		files = append(files, tarEntry{name: "bin/" + a, link: "busybox"})
	}
	return r.pushFiles(ctx, t, files, &v1.Config{Cmd: RunnableCommand, Env: []string{"PATH=/bin"}})
}

// PushRunnableIndex pushes an OCI-style multi-platform index as repo:tag: a runnable
// linux/amd64 image (PushRunnableImage's) and a random linux/arm64 one, as a multi-arch build
// would. It returns the index's digest reference and the amd64 image's.
func (r *Registry) PushRunnableIndex(ctx context.Context, repo, tag string) (index, amd64 name.Digest, err error) {
	t, err := r.tag(repo, tag)
	if err != nil {
		return name.Digest{}, name.Digest{}, err
	}
	amd64, err = r.PushRunnableImage(ctx, repo, tag+"-amd64")
	if err != nil {
		return name.Digest{}, name.Digest{}, err
	}
	img, err := remote.Image(amd64, remoteOptions(ctx)...)
	if err != nil {
		return name.Digest{}, name.Digest{}, fmt.Errorf("reading back %s: %w", amd64, err)
	}
	arm64, err := randomImage(v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		return name.Digest{}, name.Digest{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	h, err := idx.Digest()
	if err != nil {
		return name.Digest{}, name.Digest{}, fmt.Errorf("digest of index for %s: %w", t, err)
	}
	if err := remote.WriteIndex(t, idx, remoteOptions(ctx)...); err != nil {
		return name.Digest{}, name.Digest{}, fmt.Errorf("pushing index %s: %w", t, err)
	}
	return t.Context().Digest(h.String()), amd64, nil
}

// PushPauseImage pushes the pause program (RealNodeOptions.PauseBinary) as repo:tag, the
// sandbox image of a real node.
func (r *Registry) PushPauseImage(ctx context.Context, repo, tag, pauseBinary string) (name.Digest, error) {
	t, err := r.tag(repo, tag)
	if err != nil {
		return name.Digest{}, err
	}
	bin, err := os.ReadFile(pauseBinary)
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading pause for %s: %w", t, err)
	}
	return r.pushFiles(ctx, t, []tarEntry{{name: "pause", data: bin, mode: 0o755}}, &v1.Config{Entrypoint: []string{"/pause"}})
}

type tarEntry struct {
	name string
	data []byte
	mode int64
	dir  bool
	link string
}

// pushFiles pushes a one-layer linux/amd64 image of files with config cfg as t.
func (r *Registry) pushFiles(ctx context.Context, t name.Tag, files []tarEntry, cfg *v1.Config) (name.Digest, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the digest a function of the files only.
	mtime := time.Unix(0, 0)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			return name.Digest{}, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return name.Digest{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return name.Digest{}, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return name.Digest{}, fmt.Errorf("layer for %s: %w", t, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image for %s: %w", t, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return name.Digest{}, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", *cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return name.Digest{}, fmt.Errorf("config of %s: %w", t, err)
	}
	return push(ctx, t, img)
}
