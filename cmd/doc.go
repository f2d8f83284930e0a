// Command manager (cmd/main.go) is the Fixity operator binary: it learns its identity from the
// API server, serves the admission webhooks on --webhook-port, and runs the controllers under
// leader election. Flags are documented in ../shared/api.md and by `manager --help`.
package main
