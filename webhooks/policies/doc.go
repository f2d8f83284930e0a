// Package policies validates ImmutabilityPolicies at apply time for what the CRD schema cannot
// check: attestation conditions are CEL that must compile, so that a typo is a rejected
// `kubectl apply` naming the field rather than images denied later. It is failurePolicy
// Ignore: a policy is never blocked by the operator being down, and the policy controller
// reports the same problem as Ready=False InvalidSpec.
package policies
