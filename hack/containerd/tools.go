//go:build tools

// Package containerd pins the containerd daemon and its runc shim that hack/build-node.sh builds
// for the e2e cluster's real node. Its own module: containerd's dependencies never enter the
// operator's graph.
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
)
