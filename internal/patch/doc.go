// Package patch holds the status patching used by every reconciler: take a snapshot when the
// object is read, mutate it, and patch only the status difference at the end (deferred), so that
// reconcilers never Update and never overwrite fields they did not change.
package patch
