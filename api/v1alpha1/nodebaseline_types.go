package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BaselineFormatVersion is the version of the way baselines are recorded. A baseline of
// another version is recorded again from the node's current state, never compared: an upgrade
// of the operator must not make a fleet look drifted.
const BaselineFormatVersion = 1

// NodePhase is where a node is in its replacement.
// +kubebuilder:validation:Enum=Clean;Drifted;Cordoned;Draining;Replacing;DrainStuck
type NodePhase string

const (
	// NodeClean means the node matches its baseline.
	NodeClean NodePhase = "Clean"
	// NodeDrifted means the node differs from its baseline and nothing has been done yet
	// (Report, Audit, or held by a budget or the circuit breaker).
	NodeDrifted NodePhase = "Drifted"
	// NodeCordoned means Fixity cordoned and tainted the node (action Cordon, or a Replace
	// with no provisioner once drained).
	NodeCordoned NodePhase = "Cordoned"
	// NodeDraining means Fixity is evicting the node's pods.
	NodeDraining NodePhase = "Draining"
	// NodeReplacing means the node was handed to its provisioner, which drains and removes it.
	NodeReplacing NodePhase = "Replacing"
	// NodeDrainStuck means the drain did not finish within drainTimeout; the node stays
	// cordoned and nothing is forced.
	NodeDrainStuck NodePhase = "DrainStuck"
)

// Disrupted reports whether Fixity has cordoned a node in phase p: such a node counts against
// maxUnavailable until it is gone.
func (p NodePhase) Disrupted() bool {
	return p == NodeCordoned || p == NodeDraining || p == NodeReplacing || p == NodeDrainStuck
}

// NodeInfoRecord is what the kubelet reported about the machine when the baseline was recorded.
type NodeInfoRecord struct {
	// +kubebuilder:validation:MaxLength=256
	// +optional
	KernelVersion string `json:"kernelVersion,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	OSImage string `json:"osImage,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	KubeletVersion string `json:"kubeletVersion,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	ContainerRuntimeVersion string `json:"containerRuntimeVersion,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	MachineID string `json:"machineID,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	SystemUUID string `json:"systemUUID,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	BootID string `json:"bootID,omitempty"`
}

// BaselineTaint is a taint as recorded (without the time it was added).
type BaselineTaint struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +required
	Key string `json:"key"`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Value string `json:"value,omitempty"`
	// +kubebuilder:validation:Enum=NoSchedule;PreferNoSchedule;NoExecute
	// +required
	Effect corev1.TaintEffect `json:"effect"`
}

// NodeBaselineSpec is a node as it was first seen Ready. It is immutable: to accept a node's
// current state, delete its baseline and a new one is recorded.
type NodeBaselineSpec struct {
	// formatVersion is the version of the way the baseline was recorded.
	// +kubebuilder:validation:Minimum=1
	// +required
	FormatVersion int32 `json:"formatVersion"`

	// nodeUID is the UID of the Node recorded: a Node created again with the same name is
	// another node.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	NodeUID string `json:"nodeUID"`

	// providerID is the node's spec.providerID when recorded.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	ProviderID string `json:"providerID,omitempty"`

	// nodeInfo is the node's status.nodeInfo when recorded.
	// +required
	NodeInfo NodeInfoRecord `json:"nodeInfo"`

	// taints are the node's taints when recorded.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Taints []BaselineTaint `json:"taints,omitempty"`

	// watchedLabels are the label keys that were watched when the baseline was recorded;
	// labels holds those of them the node had. A key watched since is not compared.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=317
	// +optional
	WatchedLabels []string `json:"watchedLabels,omitempty"`

	// labels are the watched labels' values when recorded.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// recordedAt is when the baseline was recorded.
	// +required
	RecordedAt metav1.Time `json:"recordedAt"`
}

// NodeDriftFinding is one way a node differs from its baseline (or from a policy's expect).
type NodeDriftFinding struct {
	// check is the comparison that found it.
	// +required
	Check NodeCheck `json:"check"`
	// recorded is the baseline's (or the expected) value.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Recorded string `json:"recorded"`
	// observed is the node's value now.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Observed string `json:"observed"`
	// since is when it was first seen.
	// +required
	Since metav1.Time `json:"since"`
}

// NodeBaselineStatus is what the operator found and did.
type NodeBaselineStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is where the node is: Clean, Drifted, Cordoned, Draining, Replacing, DrainStuck.
	// +optional
	Phase NodePhase `json:"phase,omitempty"`

	// drifted lists how the node differs from its baseline under the checks of the policies
	// that match it.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Drifted []NodeDriftFinding `json:"drifted,omitempty"`

	// policies are the policies the node was cordoned under: it counts against each one's
	// maxUnavailable until it is gone.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	Policies []string `json:"policies,omitempty"`

	// disruptedAt is when Fixity cordoned the node; drainTimeout counts from it.
	// +optional
	DisruptedAt *metav1.Time `json:"disruptedAt,omitempty"`

	// drainedAt is when every pod that had to leave the node was gone.
	// +optional
	DrainedAt *metav1.Time `json:"drainedAt,omitempty"`

	// message says what is happening or what is in the way, e.g. the pod a
	// PodDisruptionBudget keeps, or NoProvisioner.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeBaseline is a node as it was first seen Ready, recorded by the operator where the node
// cannot write (a kubelet rewrites its own Node's status, labels and annotations). One per
// node, with the node's name, owned by the Node and garbage-collected with it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nbl,categories=fixity
// +kubebuilder:printcolumn:name="Kernel",type=string,JSONPath=`.spec.nodeInfo.kernelVersion`
// +kubebuilder:printcolumn:name="OS",type=string,JSONPath=`.spec.nodeInfo.osImage`
// +kubebuilder:printcolumn:name="Kubelet",type=string,JSONPath=`.spec.nodeInfo.kubeletVersion`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeBaseline struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the node as recorded; immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; delete the NodeBaseline to record the node's current state"
	// +required
	Spec NodeBaselineSpec `json:"spec"`

	// status is what the operator found and did.
	// A new object reads status {observedGeneration: 0} until the operator writes it, so
	// kstatus and Argo CD see it in progress rather than current, and counts print 0.
	// +kubebuilder:default={}
	// +optional
	Status NodeBaselineStatus `json:"status,omitempty"`
}

// NodeBaselineList is a list of NodeBaseline.
// +kubebuilder:object:root=true
type NodeBaselineList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeBaseline `json:"items"`
}

// SetObservedGeneration records the generation the status was computed for.
func (b *NodeBaseline) SetObservedGeneration(gen int64) { b.Status.ObservedGeneration = gen }

// Same reports whether f and o are the same difference (whenever seen).
func (f NodeDriftFinding) Same(o NodeDriftFinding) bool {
	return f.Check == o.Check && f.Recorded == o.Recorded && f.Observed == o.Observed
}
