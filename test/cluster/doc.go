// Package cluster starts local Kubernetes clusters for tests, from the binaries that
// hack/build-k8s.sh builds into bin/k8s (nothing is downloaded).
//
// StartControlPlane runs only etcd and kube-apiserver through envtest: fast, for integration
// tests of controllers and webhooks that run in the test process. Nothing acts on pods there:
// no controllers, no scheduler, no nodes.
//
// Start runs a complete cluster: the same envtest control plane plus kube-controller-manager,
// kube-scheduler and KWOK, which plays the kubelet for fake nodes (kwok-node-0, kwok-node-1,
// ...). Deployments create ReplicaSets and pods, pods are scheduled and become Running and
// Ready, evicted pods go away and are replaced, and container statuses carry an imageID as a
// kubelet with containerd reports it (see hack/kwok/stages.yaml). No container ever runs.
//
// Every process listens on 127.0.0.1 only (controller manager and scheduler serve nothing), and
// logs to a file in Cluster.Dir; errors name the log to read. Stop ends them all; if the test
// process dies first, its children die with it (Pdeathsig), and a small watchdog kills
// envtest's etcd and kube-apiserver, which envtest starts without that protection.
package cluster
