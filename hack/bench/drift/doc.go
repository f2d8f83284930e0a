// Command drift measures drift remediation at scale: it starts a local cluster with KWOK nodes
// (default 50) and the manager binary, rolls out Deployments until the policy matches the
// requested number of pods (default 5,000), then reports the manager's memory (RSS) and the
// time from a pod starting to run another digest to its eviction.
//
//	go run ./hack/bench/drift [-nodes 50] [-pods 5000] [-deployments 50] [-samples 10]
package main
