// Command config measures what watching every ConfigMap and Secret costs the manager
// (config.mutable: Replace). It starts a local cluster and the manager binary twice: once with no
// user ConfigMaps or Secrets, and once after creating the requested number of each (default
// 5,000 and 5,000) spread over namespaces, and prints the manager's resident memory (RSS) and its
// peak once ready; the readiness check waits for the config cache to sync, so the peak includes
// the initial list. It then edits one ConfigMap used by a bare pod and times until that pod is
// deleted to be recreated.
//
//	go run ./hack/bench/config [-configmaps 5000] [-secrets 5000] [-configmap-bytes 4096] [-secret-bytes 1024]
package main
