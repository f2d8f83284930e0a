// Package operator holds what the running operator is made of, below the controllers and
// webhooks: its scheme, the manager options (cache, leader election), its configuration and the
// dependencies they share (Deps). It imports neither controllers/ nor webhooks/: cmd/main.go,
// the test suites and the benchmarks build a manager with ManagerOptions and NewDeps, then call
// controllers.Setup and webhooks.Setup, so every one of them runs exactly what the binary runs.
package operator
