// Command admission measures admission latency through a real kube-apiserver (envtest) with
// the operator running in-process and images in the loopback registry signed with cosign:
// pod creation with no webhook, with a no-op webhook pair, with Fixity on a cached verdict and
// on a cold one (a new signed digest per pod), and kubectl exec into a locked-down pod.
//
//	go run ./hack/bench/admission [-n 200] [-cold 50]
package main
