package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessApprovalSpec names the grant being approved. It is immutable.
type AccessApprovalSpec struct {
	// grant is the name of the AccessGrant, in the approval's namespace, being approved.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Grant string `json:"grant"`
}

// AccessApprovalStatus is the observed state of an AccessApproval.
type AccessApprovalStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is True while the approval counts for its grant; Stalled or Reconciling
	// (kstatus) say whether anything but an edit can change that.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// approver is the user who created the approval, taken from the admission request.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Approver string `json:"approver,omitempty"`
}

// AccessApproval is a second person's approval of an AccessGrant, where a policy asks for one
// (runtime.approvals). Its approver is whoever created it; a requester cannot approve their own
// grant, and nobody approves one grant twice.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=approval,categories=fixity
// +kubebuilder:printcolumn:name="Grant",type=string,JSONPath=`.spec.grant`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.status.approver`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessApproval struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is immutable after creation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; delete the approval and create a new one"
	// +required
	Spec AccessApprovalSpec `json:"spec"`

	// status is the observed state.
	// A new object reads status {observedGeneration: 0} until the operator writes it, so
	// kstatus and Argo CD see it in progress rather than current, and counts print 0.
	// +kubebuilder:default={}
	// +optional
	Status AccessApprovalStatus `json:"status,omitempty"`
}

// AccessApprovalList is a list of AccessApproval.
// +kubebuilder:object:root=true
type AccessApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessApproval `json:"items"`
}

// GetConditions returns the status conditions, for generic condition helpers.
func (a *AccessApproval) GetConditions() []metav1.Condition { return a.Status.Conditions }

// SetConditions replaces the status conditions.
func (a *AccessApproval) SetConditions(c []metav1.Condition) { a.Status.Conditions = c }

// SetObservedGeneration records the generation the status was computed for.
func (a *AccessApproval) SetObservedGeneration(gen int64) { a.Status.ObservedGeneration = gen }
