// Command nodes measures node drift at scale: it starts a control plane and the manager binary,
// creates pods (default 5,000) for the manager to cache, then nodes (default 500) under a node
// policy, and reports the manager's memory with and without the nodes, and the time from a
// node's kernel changing in place (20 at once by default) to its cordon.
//
//	go run ./hack/bench/nodes [-nodes 500] [-pods 5000] [-drifting 20]
package main
