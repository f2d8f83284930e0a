#!/usr/bin/env bash
# `make demo`: the operator's main job on a local cluster. Starts the local environment
# (hack/local-cluster.sh), runs the manager against it as a local process serving the webhooks,
# applies config/samples and deploys a digest-pinned, signed image into the enforced namespace.
#
#   hack/demo.sh up | down
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export FIXITY_LOCAL_DIR=${FIXITY_LOCAL_DIR:-$root/.local}
dir=$FIXITY_LOCAL_DIR
webhook_port=${FIXITY_WEBHOOK_PORT:-9443}
probe_addr=${FIXITY_PROBE_ADDR:-127.0.0.1:8081}
kubectl="$root/bin/k8s/kubectl --kubeconfig $dir/kubeconfig"
pidfile=$dir/manager.pid

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
manager_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

up() {
  step "Starting the local cluster and registry"
  "$root/hack/local-cluster.sh" up
  # shellcheck disable=SC1091
  source "$dir/images.env"

  step "Starting the Fixity manager (log: $dir/manager.log)"
  manager=${FIXITY_MANAGER:-$root/bin/manager}
  [ -x "$manager" ] || (cd "$root" && go build -o bin/manager ./cmd)
  if ! manager_running; then
    nohup "$manager" --kubeconfig "$dir/kubeconfig" --leader-elect \
      --webhook-port "$webhook_port" --webhook-cert-path "$dir/webhook-certs" \
      --health-probe-bind-address "$probe_addr" --metrics-bind-address 0 \
      >"$dir/manager.log" 2>&1 &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 1 60); do
    curl -sf "http://$probe_addr/readyz" >/dev/null && break
    manager_running || { tail -n 30 "$dir/manager.log" >&2; echo "the manager exited" >&2; exit 1; }
    sleep 1
  done
  curl -sf "http://$probe_addr/readyz" >/dev/null || { echo "the manager did not become ready; see $dir/manager.log" >&2; exit 1; }
  grep -m1 '"Running as"' "$dir/manager.log" || true

  step "Fake nodes (KWOK)"
  $kubectl wait --for=condition=Ready nodes --all --timeout=60s >/dev/null
  $kubectl get nodes

  step "Applying config/samples"
  $kubectl apply -k "$root/config/samples"
  $kubectl wait --for=condition=Ready immutabilitypolicies --all --timeout=60s >/dev/null
  $kubectl get immutabilitypolicies

  step "Deploying the signed image $SIGNED_DIGEST into the enforced namespace shop"
  $kubectl -n shop apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: $SIGNED_DIGEST
YAML
  $kubectl -n shop rollout status deployment/web --timeout=120s
  $kubectl -n shop get pods -o wide

  cat <<TXT

Fixity is running against a local cluster. Try:
  export KUBECONFIG=$dir/kubeconfig
  $root/bin/k8s/kubectl get immutabilitypolicies,accessgrants -A
  $root/bin/k8s/kubectl -n shop get pods -o custom-columns=POD:.metadata.name,NODE:.spec.nodeName,IMAGE_ID:.status.containerStatuses[0].imageID
  tail -f $dir/manager.log            # the operator's log
  ls $dir/cluster/*.log               # the control plane's logs
Images in the local registry ($REGISTRY): $SIGNED_TAG (signed, key $dir/cosign.pub), $UNSIGNED_TAG (unsigned).
Stop everything with: make demo-down
TXT
}

down() {
  if manager_running; then
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 20); do manager_running || break; sleep 1; done
    manager_running && kill -KILL "$(cat "$pidfile")"
    echo "manager stopped"
  fi
  rm -f "$pidfile"
  "$root/hack/local-cluster.sh" down
}

case ${1:-} in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
