// Package webhooks serves Fixity's admission webhooks (Setup), one sub-package per admission
// concern: pods (what a Pod may be created or changed into, and who may touch its labels and
// fixity.dev/* annotations), workloads (the same rules checked on workload templates at apply
// time), podaccess (exec, attach and port-forward) and accessgrant (who may request a grant).
package webhooks
