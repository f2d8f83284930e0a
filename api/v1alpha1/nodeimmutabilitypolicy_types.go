package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NodeCheck names one comparison of a node with its baseline.
// +kubebuilder:validation:Enum=KernelVersion;OSImage;KubeletVersion;ContainerRuntimeVersion;Identity;Reboot;Labels;Taints
type NodeCheck string

const (
	// CheckKernelVersion compares status.nodeInfo.kernelVersion.
	CheckKernelVersion NodeCheck = "KernelVersion"
	// CheckOSImage compares status.nodeInfo.osImage (from /etc/os-release).
	CheckOSImage NodeCheck = "OSImage"
	// CheckKubeletVersion compares status.nodeInfo.kubeletVersion.
	CheckKubeletVersion NodeCheck = "KubeletVersion"
	// CheckContainerRuntimeVersion compares status.nodeInfo.containerRuntimeVersion.
	CheckContainerRuntimeVersion NodeCheck = "ContainerRuntimeVersion"
	// CheckIdentity compares machineID, systemUUID and spec.providerID: another machine
	// behind the same Node.
	CheckIdentity NodeCheck = "Identity"
	// CheckReboot compares bootID; off by default, since reboots are common and change nothing
	// that was built.
	CheckReboot NodeCheck = "Reboot"
	// CheckLabels compares the values of the watchedLabels.
	CheckLabels NodeCheck = "Labels"
	// CheckTaints finds a recorded taint removed.
	CheckTaints NodeCheck = "Taints"
)

// DefaultNodeChecks are the checks of a policy that names none.
var DefaultNodeChecks = []NodeCheck{CheckKernelVersion, CheckOSImage, CheckKubeletVersion, CheckContainerRuntimeVersion, CheckIdentity}

// NodeAction says what happens to a drifted node, from the most cautious to the least.
// +kubebuilder:validation:Enum=Replace;Drain;Cordon;Report
type NodeAction string

const (
	// NodeReport only reports (Events and status).
	NodeReport NodeAction = "Report"
	// NodeCordon cordons the node and taints it fixity.dev/drifted:NoSchedule.
	NodeCordon NodeAction = "Cordon"
	// NodeDrain cordons, taints and evicts the node's pods through the Eviction API.
	NodeDrain NodeAction = "Drain"
	// NodeReplace hands the node to what provisions it (Karpenter, Cluster API); with neither
	// it drains the node and leaves it cordoned (NoProvisioner).
	NodeReplace NodeAction = "Replace"
)

// NodeImmutabilityPolicySpec says which nodes must stay as they were first seen, and what
// happens to one changed in place.
// +kubebuilder:validation:XValidation:rule="!has(self.checks) || !('Labels' in self.checks) || (has(self.watchedLabels) && size(self.watchedLabels) > 0)",message="checks has Labels but watchedLabels is empty: name the label keys to compare"
type NodeImmutabilityPolicySpec struct {
	// mode is Enforce (act on drifted nodes) or Audit (report only; never cordons or replaces).
	// +kubebuilder:default=Enforce
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// nodeSelector selects the nodes the policy applies to; omitted selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// checks are the comparisons made with each node's baseline.
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:default={KernelVersion,OSImage,KubeletVersion,ContainerRuntimeVersion,Identity}
	// +optional
	Checks []NodeCheck `json:"checks,omitempty"`

	// watchedLabels are the label keys the Labels check compares. Other labels are never
	// compared: CNIs, device plugins and operators relabel nodes all the time.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +kubebuilder:default={}
	// +optional
	WatchedLabels []string `json:"watchedLabels,omitempty"`

	// expect is an optional declared baseline: a node that does not match it is drifted as
	// soon as it is seen, and whenever it stops matching.
	// +optional
	Expect *NodeExpectation `json:"expect,omitempty"`

	// action is what happens to a drifted node: Replace, Drain, Cordon or Report.
	// +kubebuilder:default=Replace
	// +optional
	Action NodeAction `json:"action,omitempty"`

	// maxUnavailable is how many of the matched nodes (a number, or a percentage rounded
	// down) Fixity may have cordoned at once; a node counts until it is gone.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]{1,3}%$')",message="maxUnavailable must be a non-negative number or a percentage such as 10%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// maxDriftedPercent is the circuit breaker: when more than this share of the matched nodes
	// is drifted at once, no further node is cordoned until the share falls.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDriftedPercent *int32 `json:"maxDriftedPercent,omitempty"`

	// drainTimeout is how long a drain may take; after it the node stays cordoned and is
	// reported DrainStuck. A drain is never forced.
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="drainTimeout must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('168h')",message="drainTimeout must be at most 168h"
	// +optional
	DrainTimeout *metav1.Duration `json:"drainTimeout,omitempty"`
}

// NodeExpectation is a declared baseline.
type NodeExpectation struct {
	// kubeletVersions are the kubelet versions a node may run, e.g. v1.37.2; empty allows any.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=2
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`
	// +optional
	KubeletVersions []string `json:"kubeletVersions,omitempty"`

	// osImageRegExp is an RE2 expression the whole osImage must match; empty allows any.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	OSImageRegExp string `json:"osImageRegExp,omitempty"`
}

// NodeImmutabilityPolicyStatus is the observed state of a NodeImmutabilityPolicy.
type NodeImmutabilityPolicyStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready and RemediationAllowed; Stalled (only an edit helps) or Reconciling
	// (retried, waiting) for kstatus.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// matchedNodes is the number of nodes the policy matches.
	// +kubebuilder:default=0
	// +optional
	MatchedNodes int32 `json:"matchedNodes"`

	// driftedNodes is the number of matched nodes that differ from their baseline.
	// +kubebuilder:default=0
	// +optional
	DriftedNodes int32 `json:"driftedNodes"`

	// replacingNodes is the number of nodes Fixity has cordoned under this policy that are not
	// gone yet: what maxUnavailable counts.
	// +kubebuilder:default=0
	// +optional
	ReplacingNodes int32 `json:"replacingNodes"`

	// replacedNodes is the number of drifted nodes handed to their provisioner (or drained
	// where there is none) since the policy was created.
	// +kubebuilder:default=0
	// +optional
	ReplacedNodes int64 `json:"replacedNodes"`
}

// NodeImmutabilityPolicy says which nodes are immutable: a node changed in place (kernel, OS
// image, kubelet, runtime, identity) is replaced, never patched.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nipol,categories=fixity
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedNodes`
// +kubebuilder:printcolumn:name="Drifted",type=integer,JSONPath=`.status.driftedNodes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeImmutabilityPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired behaviour.
	// +required
	Spec NodeImmutabilityPolicySpec `json:"spec"`

	// status is the observed state.
	// A new object reads status {observedGeneration: 0} until the operator writes it, so
	// kstatus and Argo CD see it in progress rather than current, and counts print 0.
	// +kubebuilder:default={}
	// +optional
	Status NodeImmutabilityPolicyStatus `json:"status,omitempty"`
}

// NodeImmutabilityPolicyList is a list of NodeImmutabilityPolicy.
// +kubebuilder:object:root=true
type NodeImmutabilityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeImmutabilityPolicy `json:"items"`
}

// SetObservedGeneration records the generation the status was computed for.
func (p *NodeImmutabilityPolicy) SetObservedGeneration(gen int64) {
	p.Status.ObservedGeneration = gen
}
