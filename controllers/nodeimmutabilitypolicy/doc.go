// Package nodeimmutabilitypolicy is the NodeImmutabilityPolicy status controller, the only
// writer of a node policy's status: it checks what the schema cannot (selectors, regular
// expressions), and publishes the counts of matched, drifted and replacing nodes from their
// baselines, the circuit breaker's state and the node drift gauges.
package nodeimmutabilitypolicy
