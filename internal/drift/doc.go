// Package drift decides whether a running pod still is what was admitted: the five checks of
// spec.drift (ImageDigest, EphemeralContainers, InteractiveAccess, SpecChange, Unverified), and
// a Tracker of what was found per pod and policy, from which the circuit breaker and the
// policies' status counts are derived.
package drift
