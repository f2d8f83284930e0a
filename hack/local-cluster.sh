#!/usr/bin/env bash
# Starts or stops the local environment: a local Kubernetes cluster (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, KWOK fake nodes, and Karpenter's KWOK provider) with
# Fixity's CRDs and webhook configurations, and a loopback OCI registry with signed demo images. It is hack/localenv run in
# the background; its files (kubeconfig, logs) are in $FIXITY_LOCAL_DIR (default .local/).
#
#   hack/local-cluster.sh up [--real-node] | down | status
#
# --real-node adds one node run by a real kubelet and containerd (hack/build-node.sh; needs root),
# labelled fixity.dev/real-node=true and tainted fixity.dev/real-node=true:NoSchedule.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FIXITY_LOCAL_DIR:-$root/.local}
registry=${FIXITY_REGISTRY:-127.0.0.1:5001}
webhook_port=${FIXITY_WEBHOOK_PORT:-9443}
nodes=${FIXITY_NODES:-3}
pidfile=$dir/localenv.pid
real_node=()
if [ "${2:-}" = "--real-node" ]; then real_node=(--real-node); fi

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case ${1:-} in
up)
  if running && [ -f "$dir/ready" ]; then
    echo "local environment already running (pid $(cat "$pidfile")); kubeconfig: $dir/kubeconfig"
    exit 0
  fi
  "$root/hack/build-k8s.sh" >/dev/null
  "$root/hack/build-karpenter.sh" >/dev/null
  "$root/hack/provisioner-crds.sh" >/dev/null
  if [ ${#real_node[@]} -gt 0 ]; then "$root/hack/build-node.sh" >/dev/null; fi
  (cd "$root" && go build -o bin/localenv ./hack/localenv)
  mkdir -p "$dir"
  rm -f "$dir/ready"
  echo "starting the local environment (logs: $dir/localenv.log, $dir/cluster/*.log)"
  nohup "$root/bin/localenv" --dir "$dir" --nodes "$nodes" --registry "$registry" \
    --webhook-port "$webhook_port" --karpenter "$root/bin/karpenter/karpenter-kwok" "${real_node[@]}" >"$dir/localenv.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    [ -f "$dir/ready" ] && break
    if ! running; then
      echo "the local environment failed to start; last lines of $dir/localenv.log:" >&2
      tail -n 30 "$dir/localenv.log" >&2
      exit 1
    fi
    sleep 1
  done
  if [ ! -f "$dir/ready" ]; then
    echo "the local environment did not become ready in 300s; see $dir/localenv.log" >&2
    exit 1
  fi
  tail -n 1 "$dir/localenv.log"
  ;;
down)
  if running; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "local environment stopped"
  else
    echo "local environment not running"
  fi
  rm -f "$pidfile" "$dir/ready"
  ;;
status)
  if running && [ -f "$dir/ready" ]; then echo "running (pid $(cat "$pidfile")), kubeconfig $dir/kubeconfig"; else echo "not running"; exit 1; fi
  ;;
*)
  echo "usage: $0 up [--real-node]|down|status" >&2
  exit 2
  ;;
esac
