#!/usr/bin/env bash
# Builds and installs what the e2e cluster's real node runs (test/cluster RealNode): the kubelet
# (k8s.io/kubernetes/cmd/kubelet, the control plane's version, and kubelet-next one patch release
# on), containerd v2 and its runc shim
# (github.com/containerd/containerd/v2, pinned by hack/containerd), and the pause binary (the
# Kubernetes source's pause.c, built static) into bin/node; runc, the CNI plugins (bridge,
# host-local, loopback) and a static busybox (the test images' userland) from Debian's packages.
# Debian's containerd is 1.6, which Kubernetes 1.37 no longer supports, hence the build. Each part
# is skipped when present; the first build takes about 6 minutes on 2 cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${NODE_BIN_DIR:-$root/bin/node}
k8s_version=$(sed -n 's/^\tk8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$root/hack/k8s/go.mod")
containerd_version=$(sed -n 's/^require github.com\/containerd\/containerd\/v2 \(v[^ ]*\)$/\1/p' "$root/hack/containerd/go.mod")
mkdir -p "$out"

packages=()
command -v runc >/dev/null || packages+=(runc)
[ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
file_is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || packages+=(busybox-static)
command -v ip >/dev/null || packages+=(iproute2)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]} from Debian's packages"
  if [ "$(id -u)" != 0 ]; then echo "installing packages needs root" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

stamp="$out/.versions"
want="kubernetes=$k8s_version containerd=$containerd_version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$want" ]; then
  echo "$out holds $(cat "$stamp"), not $want: rebuilding"
  rm -f "$out"/{kubelet,kubelet-next,containerd,containerd-shim-runc-v2,pause}
fi

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
patch=${k8s_version##*.}
# kubelet-next is the same source stamped one patch release on: a test restarts the node's kubelet
# with it, as an in-place kubelet upgrade would (node drift). Only the link step differs.
for build in "kubelet $k8s_version" "kubelet-next v$major.$minor.$((patch + 1))"; do
  set -- $build
  [ -x "$out/$1" ] && continue
  ldflags="-s -w"
  for kv in "gitVersion=$2" "gitMajor=$major" "gitMinor=$minor" \
    "gitTreeState=clean" "gitCommit=0000000000000000000000000000000000000000" \
    "buildDate=1970-01-01T00:00:00Z"; do
    ldflags+=" -X k8s.io/component-base/version.$kv"
  done
  echo "building $1 ($2) into $out"
  (cd "$root/hack/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1" k8s.io/kubernetes/cmd/kubelet)
done

if [ ! -x "$out/containerd" ] || [ ! -x "$out/containerd-shim-runc-v2" ]; then
  echo "building containerd $containerd_version into $out"
  # No btrfs, devmapper or zfs snapshotters: the node uses overlayfs, and those need cgo headers.
  (cd "$root/hack/containerd" && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_version" -o "$out/" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2)
fi

if [ ! -x "$out/pause" ]; then
  src=$(cd "$root/hack/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  echo "building pause from $src into $out"
  gcc -Os -static -DVERSION="$k8s_version" -o "$out/pause" "$src"
fi

echo "$want" >"$stamp"
echo "real node binaries ready in $out"
