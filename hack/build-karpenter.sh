#!/usr/bin/env bash
# Builds Karpenter's KWOK provider (sigs.k8s.io/karpenter/kwok, pinned by hack/karpenter) into
# bin/karpenter, for the e2e test that has a real Karpenter replace the node Fixity hands it.
# Karpenter's module needs a newer Go than the project: only this build uses GOTOOLCHAIN.
# About 5 minutes on 2 cores the first time; skipped when the binary of this version exists.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${KARPENTER_BIN_DIR:-$root/bin/karpenter}
version=$(sed -n 's/^require sigs.k8s.io\/karpenter \(v[^ ]*\)$/\1/p' "$root/hack/karpenter/go.mod")
stamp="$out/.version"
if [ -x "$out/karpenter-kwok" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$out"
echo "building Karpenter's KWOK provider $version into $out"
(cd "$root/hack/karpenter" && GOTOOLCHAIN=${KARPENTER_GOTOOLCHAIN:-go1.27.3} CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$out/karpenter-kwok" sigs.k8s.io/karpenter/kwok)
echo "$version" >"$stamp"
echo "Karpenter ready in $out"
