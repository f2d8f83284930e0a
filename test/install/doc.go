// Package install checks Fixity as config/default installs it: the rendered manifests are
// applied to a real API server and the manager binary runs with the Deployment's flags and only
// the permissions of its ServiceAccount, provisioning its own webhook certificate.
package install
