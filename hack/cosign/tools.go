//go:build tools

// Package tools pins the cosign CLI (github.com/sigstore/cosign/v3/cmd/cosign) that the docs'
// signing commands are run with (hack/build-cosign.sh); the operator itself uses cosign's
// library through the main module.
package tools

import _ "github.com/sigstore/cosign/v3/cmd/cosign"
