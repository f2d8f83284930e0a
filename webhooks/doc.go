// Package webhooks groups Fixity's admission webhooks, one sub-package per admission concern:
// pods (what a Pod may be created or changed into), workloads (the same rules checked on
// workload templates at apply time), and podaccess (exec, attach and port-forward).
package webhooks
