// Package remediation replaces drifted things without making matters worse. It holds what pod
// drift uses today and node drift will: the Eviction API with backoff on PodDisruptionBudget
// refusals (Evictor), the owner of a pod as its controller reports it (Owner), a gate that lets
// one pod of an owner go at a time and only once the owner has recovered from the last one,
// with a ledger that survives restarts (Gate), the circuit breaker and the census that makes
// its counts trustworthy (Breaker, Census), and disruption budgets given as a number or a
// percentage (Budget).
//
// It imports no controller: callers decide what is drifted and whether its replacement would be
// admitted; this package decides whether and how it may be replaced now.
package remediation
