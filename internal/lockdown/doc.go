// Package lockdown implements spec.runtime of ImmutabilityPolicy: pods must meet the Pod Security
// "baseline" profile (no privileged containers, host namespaces, hostPath volumes or extra
// capabilities) and must not allow privilege escalation, root filesystems may be required
// read-only, and interactive access (exec, attach, port-forward, kubectl debug) is denied unless
// an active AccessGrant of the requesting user covers the pod. It also guards the operator's own
// fixity.dev/* pod annotations. The baseline checks are the Pod Security Admission library's, so
// Fixity's verdicts and messages match what cluster admins already know.
package lockdown
