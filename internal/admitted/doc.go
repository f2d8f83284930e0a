// Package admitted holds what the operator records on a pod at admission and reads back to
// detect drift: the fixity.dev/verified record (per container, the digest verified and the
// authorities that verified it) and the fixity.dev/spec-hash of the admitted containers.
package admitted
