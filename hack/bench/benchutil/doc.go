// Package benchutil holds what the benchmark programs share: a workspace with the manager built
// into it, the local cluster's options for Fixity, reading a process's memory.
package benchutil
