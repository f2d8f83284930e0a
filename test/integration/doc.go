// Package integration holds the envtest suite: a real etcd and kube-apiserver with Fixity's
// CRDs and webhook configurations installed, and the operator (internal/operator.Setup) running
// in the test process. It checks the API schema as users meet it and the controllers and
// webhooks as the API server calls them.
package integration
