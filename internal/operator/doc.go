// Package operator wires Fixity's controllers and admission webhooks into a controller-runtime
// manager. cmd/main.go and the integration tests both call Setup, so the tests exercise exactly
// what the binary runs.
package operator
