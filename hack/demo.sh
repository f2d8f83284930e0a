#!/usr/bin/env bash
# `make demo`: the operator's main job on a local cluster. Starts the local environment
# (hack/local-cluster.sh), runs the manager against it as a local process serving the webhooks,
# applies config/samples, shows an unsigned Deployment blocked and a signed one running pinned to
# its digest, a drifted pod replaced, a pod whose ConfigMap is edited replaced, break-glass access with an AccessGrant whose pod is
# replaced when it ends, then a node whose kernel changes in place handed to Karpenter and replaced.
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

  step "Applying config/samples (the production policy verifies signatures with the key in Secret fixity-system/cosign-pub)"
  $kubectl -n fixity-system create secret generic cosign-pub --from-file=cosign.pub="$dir/cosign.pub" \
    --dry-run=client -o yaml | $kubectl apply -f -
  $kubectl apply -k "$root/config/samples"
  $kubectl wait --for=condition=Ready immutabilitypolicies --all --timeout=60s >/dev/null
  $kubectl get immutabilitypolicies

  step "Deploying the unsigned image $UNSIGNED_TAG: blocked at kubectl apply of the Deployment"
  if out=$(deployment unsigned "$UNSIGNED_TAG" | $kubectl -n shop apply -f - 2>&1); then
    echo "unexpected: the unsigned Deployment was admitted" >&2; exit 1
  fi
  echo "$out"

  step "Deploying the signed image by tag, $SIGNED_TAG: admitted, and its pods pinned to the digest"
  deployment web "$SIGNED_TAG" | $kubectl -n shop apply -f -
  $kubectl -n shop rollout status deployment/web --timeout=120s
  $kubectl -n shop get deployment web -o jsonpath='Deployment template image (as applied): {.spec.template.spec.containers[0].image}{"\n"}'
  $kubectl -n shop get pods -l app=web \
    -o custom-columns='POD:.metadata.name,NODE:.spec.nodeName,IMAGE:.spec.containers[0].image,VERIFIED:.metadata.annotations.fixity\.dev/verified'

  step "A cosign v2 signature (the legacy .sig tag) counts too: $LEGACY_TAG, server-side dry run"
  $kubectl -n shop run legacy --image="$LEGACY_TAG" --dry-run=server -o jsonpath='fixity.dev/verified: {.metadata.annotations.fixity\.dev/verified}{"\n"}'

  drift
  config
  breakglass
  nodes

  cat <<TXT

Fixity is running against a local cluster. Try:
  export KUBECONFIG=$dir/kubeconfig
  $root/bin/k8s/kubectl get immutabilitypolicies,accessgrants -A
  $root/bin/k8s/kubectl get nodeimmutabilitypolicies,nodebaselines,nodeclaims,nodes
  $root/bin/k8s/kubectl get events --field-selector involvedObject.kind=Node -w
  $root/bin/k8s/kubectl -n shop get pods -o custom-columns=POD:.metadata.name,NODE:.spec.nodeName,IMAGE_ID:.status.containerStatuses[0].imageID
  tail -f $dir/manager.log            # the operator's log
  ls $dir/cluster/*.log               # the control plane's logs
As a developer:  kubectl --kubeconfig $dir/alice.kubeconfig -n shop get accessgrants   (bob: $dir/bob.kubeconfig)
Images in the local registry ($REGISTRY): $SIGNED_TAG (signed with a cosign v3 bundle and attested, key $dir/cosign.pub),
  $LEGACY_TAG (signed the cosign v2 way and attested), $UNSIGNED_TAG (unsigned).
Stop everything with: make demo-down
TXT
}

# breakglass shows runtime lockdown and an AccessGrant: exec is denied, alice asks for a grant for
# one pod, bob approves it (the production policy asks for one approval), only she gets in, and
# when the grant expires the pod is marked for replacement.
breakglass() {
  local alice="$root/bin/k8s/kubectl --kubeconfig $dir/alice.kubeconfig"
  local bob="$root/bin/k8s/kubectl --kubeconfig $dir/bob.kubeconfig"
  local pod out
  pod=$($kubectl -n shop get pods -l app=web -o jsonpath='{.items[0].metadata.name}')

  step "alice runs kubectl exec into $pod: denied by the policy"
  if out=$($alice -n shop exec "$pod" -- true 2>&1); then echo "unexpected: exec was allowed" >&2; exit 1; fi
  echo "$out"

  step "alice creates an AccessGrant for $pod (Exec, 20s, with a reason)"
  $alice apply -f - <<YAML
apiVersion: fixity.dev/v1alpha1
kind: AccessGrant
metadata: {name: inc-4242, namespace: shop}
spec:
  pods: [$pod]
  access: [Exec]
  duration: 20s
  reason: "INC-4242: checkout returns 500"
YAML
  $kubectl -n shop wait --for=jsonpath='{.status.phase}'=Pending accessgrant/inc-4242 --timeout=30s >/dev/null
  $kubectl -n shop get accessgrant inc-4242 -o wide

  step "alice execs: the grant waits for a second person"
  if out=$($alice -n shop exec "$pod" -- true 2>&1); then echo "unexpected: exec was allowed before approval" >&2; exit 1; fi
  echo "$out"

  step "alice approves her own grant: refused"
  if out=$($alice apply -f - 2>&1 <<YAML
apiVersion: fixity.dev/v1alpha1
kind: AccessApproval
metadata: {name: inc-4242-alice, namespace: shop}
spec: {grant: inc-4242}
YAML
  ); then echo "unexpected: alice approved her own grant" >&2; exit 1; fi
  echo "$out"

  step "bob approves it: the grant is Active for 20s from his approval"
  $bob apply -f - <<YAML
apiVersion: fixity.dev/v1alpha1
kind: AccessApproval
metadata: {name: inc-4242-bob, namespace: shop}
spec: {grant: inc-4242}
YAML
  $kubectl -n shop wait --for=jsonpath='{.status.phase}'=Active accessgrant/inc-4242 --timeout=30s >/dev/null
  $kubectl -n shop get accessgrant inc-4242 -o wide
  $kubectl -n shop get accessgrant inc-4242 -o jsonpath='approved by: {range .status.approvals[*]}{.user} at {.at}{"\n"}{end}'

  step "alice execs again: Fixity admits it (the fake KWOK node has no kubelet, so the session itself fails there)"
  out=$($alice -n shop exec "$pod" -- true 2>&1) || true
  echo "$out"
  if echo "$out" | grep -q 'fixity.dev'; then echo "unexpected: Fixity denied the grant's requester" >&2; exit 1; fi

  step "bob tries the same pod: the grant is alice's alone"
  if out=$($bob -n shop exec "$pod" -- true 2>&1); then echo "unexpected: exec was allowed for bob" >&2; exit 1; fi
  echo "$out"

  step "The session is audited on the grant, and the pod is tainted"
  $kubectl -n shop get accessgrant inc-4242 -o jsonpath='{range .status.sessions[*]}{.user} {.access} {.pod} {.at}{"\n"}{end}'
  $kubectl -n shop wait --for=jsonpath='{.metadata.annotations.fixity\.dev/tainted}' "pod/$pod" --timeout=30s >/dev/null
  echo "fixity.dev/tainted: $($kubectl -n shop get pod "$pod" -o jsonpath='{.metadata.annotations.fixity\.dev/tainted}')"

  step "Waiting for the grant to expire (20s after bob's approval)"
  $kubectl -n shop wait --for=jsonpath='{.status.phase}'=Expired accessgrant/inc-4242 --timeout=60s >/dev/null
  $kubectl -n shop get accessgrant inc-4242
  step "The grant has ended: the pod alice was in is replaced by a fresh one"
  $kubectl -n shop wait --for=delete "pod/$pod" --timeout=60s >/dev/null
  $kubectl -n shop get events --field-selector "involvedObject.name=$pod" \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | grep -E 'REASON|ReplacementDue|DriftDetected|Replaced'
  $kubectl -n shop rollout status deployment/web --timeout=120s
  $kubectl -n shop get pods -l app=web
}

# nodes shows a node changed in place (its kernel, as after an unattended upgrade and a kexec):
# recorded in its NodeBaseline when first Ready, it is found drifted and handed to Karpenter
# (its KWOK provider runs in the local cluster), which drains it and brings a fresh node.
nodes() {
  local node
  step "Karpenter brings a node for the batch Deployment (NodePool burst: its nodes are tainted for batch alone)"
  $kubectl apply -f - <<YAML
apiVersion: karpenter.kwok.sh/v1alpha1
kind: KWOKNodeClass
metadata: {name: burst}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: burst}
spec:
  template:
    metadata: {labels: {pool: burst}}
    spec:
      requirements:
      - {key: kubernetes.io/os, operator: In, values: ["linux"]}
      - {key: karpenter.sh/capacity-type, operator: In, values: ["on-demand"]}
      taints: [{key: demo.fixity.dev/pool, value: burst, effect: NoSchedule}]
      nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: burst}
      expireAfter: Never
  limits: {cpu: 100}
  disruption: {consolidationPolicy: WhenEmpty, consolidateAfter: Never}
YAML
  deployment batch "$SIGNED_TAG" | sed 's/^    spec:$/    spec:\n      nodeSelector: {pool: burst}\n      tolerations: [{key: demo.fixity.dev\/pool, value: burst, effect: NoSchedule}]/' |
    $kubectl -n shop apply -f -
  $kubectl -n shop rollout status deployment/batch --timeout=180s
  node=$($kubectl -n shop get pods -l app=batch -o jsonpath='{.items[0].spec.nodeName}')
  $kubectl get nodeclaims
  step "Node baselines, recorded by the operator when each node was first Ready (the kubelet cannot write them)"
  $kubectl wait --for=jsonpath='{.status.phase}'=Clean "nodebaseline/$node" --timeout=60s >/dev/null
  $kubectl get nodebaselines
  step "The kernel of $node changes in place, as after an unattended upgrade"
  $kubectl patch node "$node" --subresource=status --type=merge \
    -p '{"status":{"nodeInfo":{"kernelVersion":"6.1.0-29-cloud-amd64"}}}' >/dev/null
  $kubectl wait --for=delete "node/$node" --timeout=180s >/dev/null
  $kubectl get events --field-selector "involvedObject.kind=Node,involvedObject.name=$node" \
    -o custom-columns=REASON:.reason,MESSAGE:.message | grep -E 'REASON|NodeDrifted|Cordoned|ReplacementRequested'
  step "Karpenter drained and removed $node and brought a fresh node; the batch pods run there"
  $kubectl -n shop rollout status deployment/batch --timeout=180s
  $kubectl -n shop get pods -l app=batch -o custom-columns=POD:.metadata.name,NODE:.spec.nodeName
  $kubectl get nodeclaims
  $kubectl wait --for=jsonpath='{.status.replacedNodes}'=1 nodeimmutabilitypolicy/workers --timeout=60s >/dev/null
  $kubectl wait --for=jsonpath='{.status.driftedNodes}'=0 nodeimmutabilitypolicy/workers --timeout=60s >/dev/null
  $kubectl get nodeimmutabilitypolicies
}

# drift shows a pod that starts running another digest than the one admitted (as if its node
# had pulled another image) being evicted and replaced by its ReplicaSet.
drift() {
  local pod
  pod=$($kubectl -n shop get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
  step "Pod $pod now runs another digest ($UNSIGNED_DIGEST), as if its node pulled another image"
  $kubectl -n shop patch pod "$pod" --subresource=status --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/status/containerStatuses/0/imageID\",\"value\":\"$UNSIGNED_DIGEST\"}]" >/dev/null
  $kubectl -n shop wait --for=delete "pod/$pod" --timeout=60s >/dev/null
  $kubectl -n shop get events --field-selector "involvedObject.name=$pod" \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | grep -E 'REASON|DriftDetected|Replaced'
  $kubectl -n shop rollout status deployment/web --timeout=120s
  $kubectl -n shop get pods -l app=web
  $kubectl get immutabilitypolicy production
}

# config shows configuration as part of the build: pod cfgpod mounts ConfigMap cfgpod-settings and
# is admitted with a keyed hash of its data (fixity.dev/config); editing the ConfigMap under the
# running pod is drift, and the pod is recreated with the new data rather than left to see its
# files change in place.
config() {
  local uid now
  step "Pod cfgpod mounts ConfigMap cfgpod-settings; admission records a hash of its data"
  $kubectl -n shop delete pod cfgpod --ignore-not-found --wait >/dev/null
  $kubectl -n shop create configmap cfgpod-settings --from-literal=level=info --dry-run=client -o yaml | $kubectl -n shop apply -f -
  $kubectl -n shop apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: cfgpod, labels: {app: cfgpod}}
spec:
  containers:
  - name: app
    image: $SIGNED_TAG
    volumeMounts: [{name: settings, mountPath: /etc/app}]
  volumes:
  - name: settings
    configMap: {name: cfgpod-settings}
YAML
  $kubectl -n shop wait --for=condition=Ready pod/cfgpod --timeout=60s >/dev/null
  uid=$($kubectl -n shop get pod cfgpod -o jsonpath='{.metadata.uid}')
  $kubectl -n shop get pod cfgpod -o jsonpath='fixity.dev/config: {.metadata.annotations.fixity\.dev/config}{"\n"}'

  step "kubectl patch configmap cfgpod-settings under the running pod: the pod is replaced, not changed in place"
  $kubectl -n shop patch configmap cfgpod-settings --type=merge -p '{"data":{"level":"debug"}}'
  # The same name comes back: wait for another pod (uid) than the one edited under.
  now=$uid
  for _ in $(seq 1 60); do
    now=$($kubectl -n shop get pod cfgpod -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
    [ -n "$now" ] && [ "$now" != "$uid" ] && break
    sleep 1
  done
  [ -n "$now" ] && [ "$now" != "$uid" ] || { echo "cfgpod was not replaced" >&2; exit 1; }
  $kubectl -n shop wait --for=condition=Ready pod/cfgpod --timeout=60s >/dev/null
  $kubectl -n shop get events --field-selector involvedObject.name=cfgpod \
    -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | grep -E 'REASON|DriftDetected|Recreated'
  $kubectl -n shop get pod cfgpod -o jsonpath='recreated with fixity.dev/config: {.metadata.annotations.fixity\.dev/config}{"\n"}'
}

# deployment prints a two-replica Deployment of image.
deployment() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
  labels: {app: $1}
spec:
  replicas: 2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      containers:
      - name: $1
        image: $2
YAML
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
