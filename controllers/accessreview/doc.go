// Package accessreview reviews the cluster's RBAC whenever a role, binding, namespace or policy
// changes (and every few minutes, for authorizers that are not RBAC): every subject the bindings
// name is asked about of the API server's authorizer (internal/accessreview). A new finding is
// an Event on the bindings naming the subject; the policy controller publishes the count and the
// AccessReviewed condition.
package accessreview
