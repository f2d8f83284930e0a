// Package benchutil holds what the benchmark programs share: building the manager, reading a
// process's memory.
package benchutil
