// Package drift is the pod drift controller: it runs the drift checks of every policy that
// matches a pod, reports what it finds (Events, metrics, policy status through the shared
// Tracker), and replaces drifted pods safely: through the Eviction API so PodDisruptionBudgets
// hold, one pod per owner at a time, never past the circuit breaker, and bare pods recreated
// from their saved spec so they are not lost.
package drift
