package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessKind is one kind of interactive access a grant allows.
// +kubebuilder:validation:Enum=Exec;Attach;PortForward;Debug
type AccessKind string

const (
	// AccessExec allows pods/exec.
	AccessExec AccessKind = "Exec"
	// AccessAttach allows pods/attach.
	AccessAttach AccessKind = "Attach"
	// AccessPortForward allows pods/portforward.
	AccessPortForward AccessKind = "PortForward"
	// AccessDebug allows adding ephemeral containers (kubectl debug).
	AccessDebug AccessKind = "Debug"
)

// GrantPhase is where a grant is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Expired;Revoked
type GrantPhase string

const (
	// GrantPending means created and waiting: for the operator, or for approvals (see
	// runtime.approvals). A grant still Pending an hour after its creation expires.
	GrantPending GrantPhase = "Pending"
	// GrantActive means the requester may use the grant until expiresAt.
	GrantActive GrantPhase = "Active"
	// GrantExpired means expiresAt has passed.
	GrantExpired GrantPhase = "Expired"
	// GrantRevoked means the grant was deleted before it expired.
	GrantRevoked GrantPhase = "Revoked"
)

// AccessGrantSpec says who may do what to which pods, for how long and why. It is immutable.
// +kubebuilder:validation:XValidation:rule="has(self.pods) != has(self.podSelector)",message="exactly one of pods or podSelector must be set"
type AccessGrantSpec struct {
	// pods are pod names in the grant's namespace. A pod that does not exist yet may be named.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Pods []string `json:"pods,omitempty"`

	// podSelector selects the pods in the grant's namespace by label.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// access lists the kinds of access granted.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +required
	Access []AccessKind `json:"access"`

	// duration is how long the grant is active after creation, or after the last approval it
	// needs: default 5m, at most 1h.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="duration must be greater than 0"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="duration must be at most 1h"
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// reason says why the access is needed, for the audit trail (for example an incident number).
	// +kubebuilder:validation:MinLength=10
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Reason string `json:"reason"`
}

// AccessSession records one access that a grant let through.
type AccessSession struct {
	// pod that was accessed.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Pod string `json:"pod"`

	// access that was used.
	// +required
	Access AccessKind `json:"access"`

	// user who accessed the pod.
	// +kubebuilder:validation:MaxLength=512
	// +required
	User string `json:"user"`

	// at is when the access was admitted.
	// +required
	At metav1.Time `json:"at"`
}

// GrantApproval is one approval counted for a grant.
type GrantApproval struct {
	// user who approved, taken from the admission request that created the AccessApproval.
	// +kubebuilder:validation:MaxLength=512
	// +required
	User string `json:"user"`

	// at is when the approval was created.
	// +required
	At metav1.Time `json:"at"`

	// approval is the name of the AccessApproval.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Approval string `json:"approval,omitempty"`
}

// AccessGrantStatus is the observed state of an AccessGrant.
type AccessGrantStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is True while the grant is Active; Reconciling (kstatus) while it
	// waits for approvals, Stalled when only an edit helps.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// requester is the user who created the grant, taken from the admission request.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Requester string `json:"requester,omitempty"`

	// phase is Pending, Active, Expired or Revoked.
	// +optional
	Phase GrantPhase `json:"phase,omitempty"`

	// expiresAt is when the grant stops letting anyone in; while Pending, when it expires
	// unless approved.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// requiredApprovals is how many approvals the policies of the grant's namespace ask for.
	// +optional
	RequiredApprovals int32 `json:"requiredApprovals,omitempty"`

	// approvals are the approvals counted, oldest first: one per user, never the requester's.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Approvals []GrantApproval `json:"approvals,omitempty"`

	// sessions records every access the grant let through, oldest first.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	// +optional
	Sessions []AccessSession `json:"sessions,omitempty"`
}

// AccessGrant lets one person into named pods for a short time, with a reason, audited. Every
// pod it lets someone into is replaced when the grant ends.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=grant,categories=fixity
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Requester",type=string,JSONPath=`.status.requester`
// +kubebuilder:printcolumn:name="Approvals",type=integer,JSONPath=`.status.requiredApprovals`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessGrant struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is immutable after creation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; delete the grant and create a new one"
	// +required
	Spec AccessGrantSpec `json:"spec"`

	// status is the observed state.
	// A new object reads status {observedGeneration: 0} until the operator writes it, so
	// kstatus and Argo CD see it in progress rather than current, and counts print 0.
	// +kubebuilder:default={}
	// +optional
	Status AccessGrantStatus `json:"status,omitempty"`
}

// AccessGrantList is a list of AccessGrant.
// +kubebuilder:object:root=true
type AccessGrantList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessGrant `json:"items"`
}

// GetConditions returns the status conditions, for generic condition helpers.
func (g *AccessGrant) GetConditions() []metav1.Condition { return g.Status.Conditions }

// SetConditions replaces the status conditions.
func (g *AccessGrant) SetConditions(c []metav1.Condition) { g.Status.Conditions = c }

// SetObservedGeneration records the generation the status was computed for.
func (g *AccessGrant) SetObservedGeneration(gen int64) { g.Status.ObservedGeneration = gen }
