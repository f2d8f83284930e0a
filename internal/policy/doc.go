// Package policy decides which ImmutabilityPolicies apply to a pod: the always-excluded
// namespaces (the control plane and the operator itself), excludeNamespaces, and the namespace
// and pod label selectors. Admission webhooks and drift controllers share it so that both always
// agree on what a policy covers.
package policy
