package crd

import "embed"

// Bases are the CRDs as controller-gen writes them: what `kubectl fixity` defaults and
// validates policy files with, offline, exactly as the API server would.
//
//go:embed bases/*.yaml
var Bases embed.FS
