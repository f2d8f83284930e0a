// Package identity learns who the operator is from the API server (SelfSubjectReview), so that
// the rule "only the operator may write fixity.dev/* annotations" holds however the operator is
// run: in-cluster service account, a kubeconfig, or a test user.
package identity
