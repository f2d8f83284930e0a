// Package reconcile is the skeleton every Fixity reconciler shares: an ordered list of small
// phases over a scope, each ending in a typed Outcome (go on, done, wait, retry, terminal) that
// maps to one controller-runtime result and one condition reason, and a status patcher that
// skips empty patches and sets observedGeneration only when the reconcile succeeded.
package reconcile
