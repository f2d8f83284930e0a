// Package accessreview finds the users, groups and service accounts whose RBAC lets them reach
// pods past Fixity: the kubelet through nodes/proxy (straight to its port, no admission runs),
// exec or attach where no policy denies it, escalate or bind on roles, and writes to the webhook
// configurations or the node baselines Fixity trusts. It asks the API server's own authorizer
// (SubjectAccessReview) for each subject the bindings name, never a matcher of its own.
package accessreview
