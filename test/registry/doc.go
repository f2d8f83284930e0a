// Package registry runs a real, in-memory OCI registry on loopback and
// signs images in it with real cosign keys, so integration tests, e2e tests
// and the local demo exercise fixity against genuine registry and cosign
// behaviour instead of mocks.
//
// The registry is go-containerregistry's pkg/registry served over plain
// HTTP on 127.0.0.1 (ggcr's name package talks http to 127.0.0.0/8, so no
// TLS or "insecure" flags are needed). Content lives in the process and
// survives Stop/Restart, which lets tests simulate a registry outage.
//
// Signing goes through cosign's own CLI implementation (sign.SignCmd), so
// signatures are stored exactly as `cosign sign --key` stores them: as an
// OCI image tagged sha256-<hex>.sig in the signed image's repository.
package registry
