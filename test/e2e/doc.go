// Package e2e runs the manager binary against a full local cluster (test/cluster: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and KWOK nodes), so Deployments really
// create ReplicaSets and pods, evictions really replace pods, and the operator is tested the way
// it runs: as a separate process serving webhooks the API server calls.
package e2e
