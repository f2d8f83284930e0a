#!/usr/bin/env bash
# Builds the cosign CLI (github.com/sigstore/cosign/v3/cmd/cosign, pinned by hack/cosign) into
# bin/cosign, for the docs' signing commands that test/e2e/docs_test.go runs. Its own module: the
# CLI needs modules the operator does not. About 3 minutes on 2 cores the first time; skipped
# when the binary of this version exists.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${COSIGN_BIN_DIR:-$root/bin/cosign}
version=$(sed -n 's/^require github.com\/sigstore\/cosign\/v3 \(v[^ ]*\)$/\1/p' "$root/hack/cosign/go.mod")
stamp="$out/.version"
if [ -x "$out/cosign" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$out"
echo "building cosign $version into $out"
(cd "$root/hack/cosign" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/cosign" github.com/sigstore/cosign/v3/cmd/cosign)
echo "$version" >"$stamp"
