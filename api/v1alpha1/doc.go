// Package v1alpha1 contains the fixity.dev/v1alpha1 API: ImmutabilityPolicy, which says what may
// run in which namespaces and how drift is handled, and AccessGrant, the time-boxed break-glass
// exception to it. The schema (defaults, bounds and CEL rules) is generated from the markers
// here by controller-gen into config/crd/bases.
//
// +kubebuilder:object:generate=true
// +groupName=fixity.dev
package v1alpha1
