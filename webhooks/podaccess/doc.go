// Package podaccess admits CONNECT requests on pods/exec, pods/attach and pods/portforward:
// denied by the runtime rules of the matching policies unless an active AccessGrant of the
// requesting user covers the pod (issue: runtime lockdown and break-glass access).
package podaccess
