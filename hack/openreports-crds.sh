#!/usr/bin/env bash
# Copies the OpenReports CRDs (Report, ClusterReport), as that project ships them, from the Go
# module whose types Fixity writes (go.mod pins its version) into config/openreports, whence
# the chart (openreports.installCRDs) and the e2e cluster install them.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(go list -m -f '{{.Dir}}' github.com/openreports/reports-api)
if [[ -z "$dir" || ! -d "$dir/config/crd" ]]; then
	go mod download github.com/openreports/reports-api
	dir=$(go list -m -f '{{.Dir}}' github.com/openreports/reports-api)
fi
out=config/openreports
mkdir -p "$out"
install -m 0644 "$dir/config/crd/openreports.io_reports.yaml" "$dir/config/crd/openreports.io_clusterreports.yaml" "$out/"
cat > "$out/kustomization.yaml" <<EOF
# The OpenReports CRDs, copied by hack/openreports-crds.sh (make manifests) from
# github.com/openreports/reports-api. Install them where no other tool has:
#   kubectl apply -k config/openreports
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- openreports.io_reports.yaml
- openreports.io_clusterreports.yaml
EOF
