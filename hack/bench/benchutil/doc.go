// Package benchutil holds what the benchmark programs share: reading a process's memory.
package benchutil
