package v1alpha1

// This file is Fixity's vocabulary: every fixity.dev/* key, condition type and reason, and event
// reason is a constant here, and tests assert on these constants. Metric names are in
// internal/metrics.

// Condition types. Ready is the summary that kstatus, Argo CD and Flux read.
const (
	// ReadyCondition reports whether the object is being enforced as written.
	ReadyCondition = "Ready"
	// RemediationAllowedCondition reports whether drift remediation may replace pods now; it is
	// False while the circuit breaker is open.
	RemediationAllowedCondition = "RemediationAllowed"
	// ReplacementsProceedingCondition reports whether every drifted pod the policy would replace
	// can be replaced safely; it is False while some are held (ReplacementWouldBeDenied,
	// ReplacementStuck), and its message names the owners and what to fix in them.
	ReplacementsProceedingCondition = "ReplacementsProceeding"
	// AccessReviewedCondition on a policy says whether any subject's RBAC lets it reach pods
	// past Fixity (status.accessFindings counts them): reasons NoBypassReason, BypassFoundReason.
	AccessReviewedCondition = "AccessReviewed"
	NoBypassReason          = "NoBypass"
	BypassFoundReason       = "BypassFound"
	// StalledCondition is True, with Ready's reason, when only an edit of the object can make it
	// Ready; ReconcilingCondition is True while the operator retries or waits for something
	// outside it. They are kstatus's abnormal-true conditions: kstatus (Flux, cli-utils) reads
	// Failed only from Stalled, and InProgress from Reconciling or a False Ready.
	StalledCondition     = "Stalled"
	ReconcilingCondition = "Reconciling"
)

// Condition reasons.
const (
	// ActiveReason means the policy is valid and enforced.
	ActiveReason = "Active"
	// InvalidSpecReason means the spec passed schema validation but cannot be enforced (for example a
	// subjectRegExp that does not compile); the message names the field.
	InvalidSpecReason = "InvalidSpec"
	// AuthoritiesUnusableReason means a signing authority of the policy cannot be used as it
	// stands: a key, Secret or trust root it references is missing or malformed. Images the
	// policy requires signatures of are denied until it is fixed.
	AuthoritiesUnusableReason = "AuthoritiesUnusable"
	// TooManyDriftedReason means more than maxDriftedPercent of the matched pods are drifted.
	TooManyDriftedReason = "TooManyDrifted"
	// WithinBudgetReason means remediation may proceed.
	WithinBudgetReason = "WithinBudget"
	// ReconcileErrorReason means the last reconcile failed for a reason that may pass; the
	// message is the error.
	ReconcileErrorReason = "ReconcileError"
	// NoRequesterReason means an AccessGrant has no recorded requester (it was created while
	// the webhook was not installed), so nobody may use it.
	NoRequesterReason = "NoRequester"
	// CountedReason means an AccessApproval counts for its grant.
	CountedReason = "Counted"
	// NoApproverReason means an AccessApproval has no recorded approver or grant UID (it was
	// created while the webhook was not installed), so it counts for nothing.
	NoApproverReason = "NoApprover"
	// GrantNotFoundReason means the grant an AccessApproval names is gone, or is another grant
	// of the same name.
	GrantNotFoundReason = "GrantNotFound"
	// NotCountedReason means an AccessApproval does not count: its approver is the requester,
	// or approved the grant already in another AccessApproval.
	NotCountedReason = "NotCounted"
	// ProceedingReason means no drifted pod is held back.
	ProceedingReason = "Proceeding"
	// ReplacementWouldBeDeniedReason means a drifted pod is kept because the pod that would
	// replace it (its owner's template, or a bare pod's admitted spec) fails admission now.
	ReplacementWouldBeDeniedReason = "ReplacementWouldBeDenied"
	// ReplacementStuckReason means an owner did not get back the Ready pods it had before its
	// last replacement within the replacement timeout; nothing more of it is replaced until it
	// recovers.
	ReplacementStuckReason = "ReplacementStuck"
	// NoProvisionerReason means a drifted node to be replaced has neither a Karpenter
	// NodeClaim nor a Cluster API Machine: it is drained and left cordoned for a person to
	// replace.
	NoProvisionerReason = "NoProvisioner"
	// DrainStuckReason means a node's drain did not finish within drainTimeout; it stays
	// cordoned, and nothing is forced.
	DrainStuckReason = "DrainStuck"
	// ReplacementPendingReason means a drifted node waits: a node of its policy was drained or
	// replaced and the pool has not got back the nodes it had before (the replacement has not
	// joined).
	ReplacementPendingReason = "ReplacementPending"
	// BudgetExhaustedReason means a drifted node waits: maxUnavailable nodes are already
	// cordoned and not gone.
	BudgetExhaustedReason = "BudgetExhausted"
)

// Event reasons, on pods, policies, grants and the saved specs of bare pods.
const (
	// EventDriftDetected: a pod was found drifted (message: the findings).
	EventDriftDetected = "DriftDetected"
	// EventReplaced: a drifted pod was evicted for its owner to replace.
	EventReplaced = "Replaced"
	// EventRecreated: a drifted bare pod was created again from its admitted spec.
	EventRecreated = "Recreated"
	// EventRecreateFailed: creating a bare pod again from its saved spec failed.
	EventRecreateFailed = "RecreateFailed"
	// EventEvictionBlocked: the Eviction API refused (a PodDisruptionBudget); retried.
	EventEvictionBlocked = "EvictionBlocked"
	// EventReplacementSkipped: a drifted pod is reported, not replaced, by the policy's choice.
	EventReplacementSkipped = "ReplacementSkipped"
	// EventReplacementWouldBeDenied: a drifted pod is kept: its replacement would be denied.
	EventReplacementWouldBeDenied = ReplacementWouldBeDeniedReason
	// EventReplacementStuck: an owner did not recover from its last replacement in time.
	EventReplacementStuck = ReplacementStuckReason
	// EventReplacementDue: a grant ended and the pods it let someone into are to be replaced.
	EventReplacementDue = "ReplacementDue"
	// EventAccessGranted (on the grant) and EventInteractiveAccess (on the pod): an access was
	// let through under a grant and recorded.
	EventAccessGranted     = "AccessGranted"
	EventInteractiveAccess = "InteractiveAccess"
	// EventGrantEnded: an AccessGrant expired or was revoked.
	EventGrantEnded = "GrantEnded"
	// EventAccessPastFixity (on the binding naming the subject): RBAC lets a user, group or
	// service account reach pods past Fixity (nodes/proxy, exec where no policy denies it,
	// escalate or bind, writes to the webhooks or the node baselines).
	EventAccessPastFixity = "AccessPastFixity"
	// EventGrantApproved (on the grant): an AccessApproval was counted for it.
	EventGrantApproved = "Approved"
)

// Event reasons on nodes and NodeImmutabilityPolicies.
const (
	// EventBaselineRecorded: a node's baseline was recorded (or recorded again).
	EventBaselineRecorded = "BaselineRecorded"
	// EventNodeDrifted: a node differs from its baseline (message: check, recorded and
	// observed values).
	EventNodeDrifted = "NodeDrifted"
	// EventNodeHeld: a drifted node waits for the budget or the circuit breaker.
	EventNodeHeld = "NodeHeld"
	// EventNodeCordoned: a drifted node was cordoned and tainted.
	EventNodeCordoned = "Cordoned"
	// EventNodeDrained: every pod that had to leave a drifted node is gone.
	EventNodeDrained = "Drained"
	// EventNodeReplacing: a drifted node was handed to its provisioner (NodeClaim deleted,
	// Machine annotated for remediation).
	EventNodeReplacing = "ReplacementRequested"
	// EventNoProvisioner: a drifted node to be replaced has no provisioner; drained and left
	// cordoned.
	EventNoProvisioner = NoProvisionerReason
	// EventDrainBlocked: a pod on a draining node cannot be evicted now (a
	// PodDisruptionBudget, karpenter.sh/do-not-disrupt, or a bare pod Fixity does not recreate).
	EventDrainBlocked = "DrainBlocked"
	// EventDrainStuck: a drain did not finish within drainTimeout.
	EventDrainStuck = DrainStuckReason
)

// Keys on nodes, and on the objects of the provisioners nodes are handed to.
const (
	// DriftedTaint is the NoSchedule taint on a node Fixity cordoned.
	DriftedTaint = Prefix + "drifted"
	// DisruptedLabel ("true") on a NodeBaseline records that Fixity is taking its node out,
	// written (with SavedPoliciesAnnotation naming the policies) under optimistic locking
	// before the node is cordoned: the budgets count these, and a label selector lets the API
	// server send only them.
	DisruptedLabel = Prefix + "disrupted"
	// KarpenterDoNotDisruptAnnotation on a pod keeps Fixity from evicting it in a drain, as it
	// keeps Karpenter from disrupting its node.
	KarpenterDoNotDisruptAnnotation = "karpenter.sh/do-not-disrupt"
	// ClusterAPIRemediateMachineAnnotation asks a Machine's owner (through its
	// MachineHealthCheck) to remediate it.
	ClusterAPIRemediateMachineAnnotation = "cluster.x-k8s.io/remediate-machine"
)

// Well-known annotations and labels. Only the operator may write the annotations on pods.
const (
	// Prefix of every annotation and label the operator owns.
	Prefix = "fixity.dev/"
	// VerifiedAnnotation records, per container, the verified digest and the authorities that
	// verified it (JSON).
	VerifiedAnnotation = Prefix + "verified"
	// SpecHashAnnotation is the hash of the admitted containers.
	SpecHashAnnotation = Prefix + "spec-hash"
	// TaintedAnnotation says why a pod must be replaced.
	TaintedAnnotation = Prefix + "tainted"
	// OriginalImageAnnotationPrefix + container name records the image as written before the
	// digest was resolved.
	OriginalImageAnnotationPrefix = Prefix + "original-image."
	// RecordVersionAnnotation is the version of the records above (the way they were computed,
	// and the Kubernetes minor version whose defaults the pod was hashed with). A record of
	// another version is stamped again from the current spec, never taken for drift.
	RecordVersionAnnotation = Prefix + "record-version"
	// ConfigAnnotation records, for each ConfigMap and Secret the pod uses, a keyed hash (HMAC)
	// of its data when the pod was admitted (JSON), and the ID of the key: it never reveals the
	// data.
	ConfigAnnotation = Prefix + "config"
)

// Config drift.
const (
	// ConfigKeySecret (operator's namespace) holds the key the config hashes are made with. It
	// is generated once; a record made with another key is no evidence of drift.
	ConfigKeySecret = "fixity-config-key"
	// ConfigHashAnnotation holds an object's hash in the operator's config cache only (its
	// data is dropped there); it is never written to the API server.
	ConfigHashAnnotation = Prefix + "config-hash"
	// ConfigIndex is the cache index of pods by the ConfigMaps and Secrets their config record
	// names (Kind/namespace/name).
	ConfigIndex = Prefix + "config-object"
)

// Keys on the operator's own records and on the objects it manages.
const (
	// RequesterAnnotation on an AccessGrant is the user who created it, from the admission
	// request.
	RequesterAnnotation = Prefix + "requester"
	// RequesterGroupsAnnotation on an AccessGrant is the requester's groups (JSON list), from the
	// same request: whether the requester could act as an approver is asked of the API server's
	// authorizer with them.
	RequesterGroupsAnnotation = Prefix + "requester-groups"
	// ApproverAnnotation on an AccessApproval is the user who created it, and
	// ApprovedGrantUIDAnnotation the UID of the grant it approves (a grant deleted and created
	// again under the same name is a new grant), both from the admission request.
	ApproverAnnotation         = Prefix + "approver"
	ApprovedGrantUIDAnnotation = Prefix + "grant-uid"
	// GrantFinalizer keeps a deleted AccessGrant until its pods are tainted.
	GrantFinalizer = Prefix + "revoke"
	// PinsLabel marks the ConfigMaps holding an owner's tag resolutions.
	PinsLabel = Prefix + "pins"
	// RecreateLabel marks the ConfigMaps (operator's namespace) holding the admitted spec of a
	// bare pod being recreated; SavedPodAnnotation names the pod (namespace/name),
	// SavedUIDAnnotation the UID of the pod to delete, SavedPoliciesAnnotation the policies
	// replacing it (comma-separated; on a NodeBaseline, the node policies its node was taken
	// out under).
	RecreateLabel           = Prefix + "recreate"
	SavedPodAnnotation      = Prefix + "pod"
	SavedUIDAnnotation      = Prefix + "pod-uid"
	SavedPoliciesAnnotation = Prefix + "policies"
	// LedgerLabel marks the replacement ledger's ConfigMaps (operator's namespace): value
	// "owner" for an owner's last replacement (LedgerOwnerAnnotation names the owner, Kind
	// namespace/name), "replaced" for a policy's replacement count (LedgerPolicyAnnotation
	// names the policy).
	LedgerLabel            = Prefix + "ledger"
	LedgerOwnerAnnotation  = Prefix + "owner"
	LedgerPolicyAnnotation = Prefix + "policy"
	// OwnerIndex is the cache index of pods by their controller's UID.
	OwnerIndex = Prefix + "controller-uid"
)

// OpenReports (openreports.io/v1alpha1) that Fixity writes.
const (
	// ReportSource is the source of every report and result Fixity writes.
	ReportSource = "fixity"
	// ReportName is Fixity's Report in each namespace (pods: admission rules, drift checks);
	// NodesReportName and AccessReportName are its ClusterReports (node drift checks; RBAC that
	// reaches pods past Fixity).
	ReportName       = "fixity"
	NodesReportName  = "fixity-nodes"
	AccessReportName = "fixity-access"
	// ReportLabel marks the reports Fixity writes (value "true"), which it alone keeps.
	ReportLabel = Prefix + "report"
	// AccessReviewPolicy is the policy name of the access review's results.
	AccessReviewPolicy = "access-review"
	// DriftRulePrefix prefixes a drift check's name to make its rule name ("drift.ImageDigest",
	// "drift.KernelVersion").
	DriftRulePrefix = "drift."
	// MaxReportResults bounds the results of one report (an object in etcd is at most 1.5 MiB):
	// failures and warnings are kept first, and the summary still counts every result.
	MaxReportResults = 1000
)

// OperatorNamespace is the namespace the operator runs in; it is never enforced.
const OperatorNamespace = "fixity-system"
