#!/usr/bin/env bash
# Copies the CRDs of the provisioners Fixity hands drifted nodes to (Karpenter's NodeClaim,
# NodePool and NodeOverlay as its KWOK provider ships them, and its KWOKNodeClass; Cluster API's
# Machine) from their own Go modules
# into bin/crds, as those projects ship them, for the e2e cluster. Karpenter's module needs a
# newer Go than ours for its go.mod to load: only this download uses GOTOOLCHAIN.
set -euo pipefail
cd "$(dirname "$0")/.."

KARPENTER_VERSION=${KARPENTER_VERSION:-$(sed -n 's/^require sigs.k8s.io\/karpenter \(v[^ ]*\)$/\1/p' hack/karpenter/go.mod)}
CLUSTER_API_VERSION=${CLUSTER_API_VERSION:-v1.14.2}
out=bin/crds
stamp="$out/.versions"
want="karpenter $KARPENTER_VERSION kwok-crds cluster-api $CLUSTER_API_VERSION"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	exit 0
fi

dir_of() {
	GOTOOLCHAIN=${KARPENTER_GOTOOLCHAIN:-go1.27.3} GOFLAGS=-mod=mod go mod download -json "$1" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
karpenter=$(dir_of "sigs.k8s.io/karpenter@$KARPENTER_VERSION")
capi=$(dir_of "sigs.k8s.io/cluster-api@$CLUSTER_API_VERSION")
[[ -d "$karpenter" && -d "$capi" ]] || { echo "could not download the provisioners' modules" >&2; exit 1; }

rm -rf "$out" && mkdir -p "$out"
install -m 0644 \
	"$karpenter/kwok/charts/crds/karpenter.sh_nodeclaims.yaml" \
	"$karpenter/kwok/charts/crds/karpenter.sh_nodepools.yaml" \
	"$karpenter/kwok/charts/crds/karpenter.sh_nodeoverlays.yaml" \
	"$karpenter/kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml" \
	"$capi/core/config/crd/bases/cluster.x-k8s.io_machines.yaml" \
	"$out/"
echo "$want" > "$stamp"
echo "provisioner CRDs ready in $out"
