// Command kubectl-fixity is the `kubectl fixity` plugin: it tests images and manifests against
// ImmutabilityPolicies offline, through the admission webhooks' own code (verify, test), and
// works with a cluster's break-glass and drift records (grant, approve, status).
//
// Exit codes: 0 when everything is allowed, 1 when something is denied, 2 when the command
// could not decide (a file that does not parse, a policy that is invalid, a cluster that cannot
// be reached).
package main
