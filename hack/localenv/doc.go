// Command localenv runs the local environment behind `make demo` and hack/local-cluster.sh: a
// full local cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK nodes)
// with Fixity's CRDs and webhook configurations installed, and a loopback OCI registry holding
// demo images signed with a demo cosign key. It runs in the foreground until SIGINT or SIGTERM and
// then stops everything it started; hack/local-cluster.sh runs it in the background.
//
// It writes into --dir:
//
//	kubeconfig       admin kubeconfig for kubectl and the manager
//	webhook-certs/   tls.crt and tls.key the manager must serve webhooks with
//	cosign.pub       the demo signing key's public half
//	images.env       shell variables naming the demo images by digest
//	alice.kubeconfig, bob.kubeconfig   two developers (group "developers")
//	ready            written last, once everything above is usable
package main
