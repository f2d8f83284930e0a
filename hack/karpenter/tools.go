//go:build tools

// Package karpenter pins Karpenter's KWOK provider, which hack/build-karpenter.sh builds for the
// e2e cluster: a real Karpenter that replaces the nodes Fixity hands it. Its own module, because
// Karpenter needs a newer Go than the project and its own dependency versions.
package karpenter

import (
	_ "sigs.k8s.io/karpenter/kwok"
)
