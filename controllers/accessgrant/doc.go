// Package accessgrant reconciles AccessGrants: it publishes the requester, phase and expiresAt in
// status, moves a grant to Expired exactly at expiresAt (by requeueing for that moment, not by
// polling) and to Revoked when it is deleted, and taints every pod a grant let someone into
// (fixity.dev/tainted) so that drift remediation replaces it once the grant has ended.
package accessgrant
