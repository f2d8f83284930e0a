// Package builders makes the objects tests need (pods, owners, policies) in one place, so that
// table tests across packages read alike and change together. Only tests import it.
package builders
