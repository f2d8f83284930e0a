package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of the Fixity kinds.
	GroupVersion = schema.GroupVersion{Group: "fixity.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Fixity kinds with a runtime.Scheme. It is apimachinery's, not
	// controller-runtime's, so that importing the API pulls in nothing but apimachinery.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Fixity kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ImmutabilityPolicy{}, &ImmutabilityPolicyList{},
		&AccessGrant{}, &AccessGrantList{},
		&AccessApproval{}, &AccessApprovalList{},
		&NodeImmutabilityPolicy{}, &NodeImmutabilityPolicyList{},
		&NodeBaseline{}, &NodeBaselineList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
