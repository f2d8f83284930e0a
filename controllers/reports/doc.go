// Package reports publishes what Fixity found as OpenReports (openreports.io/v1alpha1), which
// Policy Reporter and other readers show: a Report per namespace with a result per pod, policy
// and rule, and ClusterReports for nodes and for RBAC that reaches pods past Fixity. They are
// kept current from drift detection's tracker, node baselines and the access review.
package reports
