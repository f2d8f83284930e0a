package v1alpha1

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyMode says whether a policy denies and replaces (Enforce) or only warns and reports (Audit).
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyMode string

const (
	// ModeEnforce denies violations at admission and replaces drifted pods.
	ModeEnforce PolicyMode = "Enforce"
	// ModeAudit never denies or replaces; violations come back as warnings and are reported.
	ModeAudit PolicyMode = "Audit"
)

// DigestRule says what happens to images referenced by tag.
// +kubebuilder:validation:Enum=Resolve;Require;Ignore
type DigestRule string

const (
	// DigestResolve rewrites tags to the digest they point at, on Pods only.
	DigestResolve DigestRule = "Resolve"
	// DigestRequire rejects tags; the message names the digest to use.
	DigestRequire DigestRule = "Require"
	// DigestIgnore applies no digest rule.
	DigestIgnore DigestRule = "Ignore"
)

// TransparencyLogRule says whether a Rekor inclusion proof is required.
// +kubebuilder:validation:Enum=Ignore;Require
type TransparencyLogRule string

const (
	// TransparencyLogIgnore does not look at the transparency log.
	TransparencyLogIgnore TransparencyLogRule = "Ignore"
	// TransparencyLogRequire requires a Rekor inclusion proof that verifies offline.
	TransparencyLogRequire TransparencyLogRule = "Require"
)

// AllowDeny is a runtime rule that either allows or denies an action.
// +kubebuilder:validation:Enum=Allow;Deny
type AllowDeny string

const (
	// Allow lets the action through.
	Allow AllowDeny = "Allow"
	// Deny rejects the action (Enforce) or warns about it (Audit).
	Deny AllowDeny = "Deny"
)

// IgnoreRequire is a runtime rule that is either off or required.
// +kubebuilder:validation:Enum=Ignore;Require
type IgnoreRequire string

const (
	// Ignore applies no rule.
	Ignore IgnoreRequire = "Ignore"
	// Require rejects pods that do not comply.
	Require IgnoreRequire = "Require"
)

// DriftAction says what happens to a drifted pod.
// +kubebuilder:validation:Enum=Replace;Report
type DriftAction string

const (
	// DriftReplace replaces drifted pods through the Eviction API.
	DriftReplace DriftAction = "Replace"
	// DriftReport only reports drifted pods.
	DriftReport DriftAction = "Report"
)

// DriftCheck names one kind of drift detection.
// +kubebuilder:validation:Enum=ImageDigest;EphemeralContainers;InteractiveAccess;SpecChange;Unverified;ConfigChange;WritableLayer
type DriftCheck string

const (
	// CheckImageDigest detects a container that runs another image digest than the one admitted.
	CheckImageDigest DriftCheck = "ImageDigest"
	// CheckEphemeralContainers detects a pod with an ephemeral container.
	CheckEphemeralContainers DriftCheck = "EphemeralContainers"
	// CheckInteractiveAccess detects a pod someone was let into under an AccessGrant.
	CheckInteractiveAccess DriftCheck = "InteractiveAccess"
	// CheckSpecChange detects admitted container fields changed in place.
	CheckSpecChange DriftCheck = "SpecChange"
	// CheckUnverified detects a pod whose images are not, or no longer, verified under the policy.
	CheckUnverified DriftCheck = "Unverified"
	// CheckConfigChange detects a pod whose ConfigMaps or Secrets changed data since admission
	// (config.mutable: Replace).
	CheckConfigChange DriftCheck = "ConfigChange"
	// CheckWritableLayer (opt-in) detects a container that wrote more than writableLayerLimit
	// into its writable layer, outside its volumes (the kubelet's stats summary).
	CheckWritableLayer DriftCheck = "WritableLayer"
)

// DefaultDriftChecks are the checks a policy runs when it names none, in the order they are
// documented: all but the opt-in WritableLayer.
var DefaultDriftChecks = []DriftCheck{
	CheckImageDigest, CheckEphemeralContainers, CheckInteractiveAccess, CheckSpecChange, CheckUnverified, CheckConfigChange,
}

// AllDriftChecks lists every drift check, in the order they are documented.
var AllDriftChecks = append(slices.Clone(DefaultDriftChecks), CheckWritableLayer)

// ConfigMutability says what happens to the mutable ConfigMaps and Secrets a pod uses.
// +kubebuilder:validation:Enum=Replace;Deny;Ignore
type ConfigMutability string

const (
	// ConfigReplace records the data of the ConfigMaps and Secrets a pod uses at admission; a
	// pod whose config changed since has drifted (ConfigChange) and is replaced.
	ConfigReplace ConfigMutability = "Replace"
	// ConfigDeny admits only pods whose ConfigMaps and Secrets are immutable: true.
	ConfigDeny ConfigMutability = "Deny"
	// ConfigIgnore applies no config rule.
	ConfigIgnore ConfigMutability = "Ignore"
)

// ImmutabilityPolicySpec says which pods a policy covers and what it enforces on them.
type ImmutabilityPolicySpec struct {
	// mode is Enforce (deny and replace) or Audit (warn and report only).
	// +kubebuilder:default=Enforce
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// match selects the pods the policy applies to. Omitted selects every pod outside the
	// always-excluded namespaces (kube-system, kube-public, kube-node-lease, fixity-system).
	// +kubebuilder:default={}
	// +optional
	Match PolicyMatch `json:"match,omitempty"`

	// images holds the image rules: digest pinning, allowed registries, signatures.
	// +kubebuilder:default={}
	// +optional
	Images ImageRules `json:"images,omitempty"`

	// runtime holds the lockdown rules: exec, port-forward, debug, privileged pods.
	// +kubebuilder:default={}
	// +optional
	Runtime RuntimeRules `json:"runtime,omitempty"`

	// config says what happens to the ConfigMaps and Secrets the pods use.
	// +kubebuilder:default={}
	// +optional
	Config ConfigRules `json:"config,omitempty"`

	// drift says how pods that no longer match what was admitted are handled.
	// +kubebuilder:default={}
	// +optional
	Drift DriftRules `json:"drift,omitempty"`
}

// PolicyMatch selects namespaces and pods.
type PolicyMatch struct {
	// namespaceSelector selects namespaces by label; omitted selects all namespaces.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// podSelector selects pods by label; omitted selects all pods.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// excludeNamespaces are never matched. kube-system, kube-public, kube-node-lease and the
	// operator's own namespace are always excluded, whatever is written here.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	ExcludeNamespaces []string `json:"excludeNamespaces,omitempty"`
}

// ImageRules are the image admission rules.
type ImageRules struct {
	// digest is Resolve (rewrite tags to digests on Pods), Require (reject tags) or Ignore.
	// +kubebuilder:default=Resolve
	// +optional
	Digest DigestRule `json:"digest,omitempty"`

	// allowedRegistries are image reference prefixes such as "ghcr.io/acme/"; empty allows any.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('://')",message="allowedRegistries entries are reference prefixes such as ghcr.io/acme/, without a URL scheme"
	// +optional
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`

	// verify requires cosign signatures on every image; omitted requires none.
	// +optional
	Verify *VerifyRules `json:"verify,omitempty"`
}

// VerifyRules say which signatures each image digest must carry.
// +kubebuilder:validation:XValidation:rule="self.threshold <= size(self.authorities)",message="threshold must not exceed the number of authorities"
// +kubebuilder:validation:XValidation:rule="!has(self.attestations) || self.attestations.all(a, !has(a.authorities) || a.authorities.all(n, self.authorities.exists(x, x.name == n)))",message="attestations[].authorities must name authorities of this policy"
type VerifyRules struct {
	// threshold is how many distinct authorities must verify each image.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	Threshold int32 `json:"threshold,omitempty"`

	// authorities are the keys and identities whose signatures count.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Authorities []Authority `json:"authorities"`

	// attestations are the in-toto attestations every image must carry, each signed by one of
	// its authorities and meeting its conditions.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Attestations []AttestationRule `json:"attestations,omitempty"`
}

// AttestationRule is one in-toto attestation images must carry.
type AttestationRule struct {
	// name identifies the attestation in messages and in fixity.dev/verified.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// predicateType is the statement's predicate type, such as https://slsa.dev/provenance/v1.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +required
	PredicateType string `json:"predicateType"`

	// authorities name the authorities of this policy that may sign it; omitted, any of them.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +optional
	Authorities []string `json:"authorities,omitempty"`

	// conditions are CEL expressions over `predicate` (the statement's predicate) and
	// `statement` (the whole in-toto statement); every one must be true.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []AttestationCondition `json:"conditions,omitempty"`
}

// AttestationCondition is one CEL condition on an attestation.
type AttestationCondition struct {
	// expression is a CEL expression that must evaluate to true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Expression string `json:"expression"`

	// message is shown when the expression is false; omitted, the expression is shown.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// Authority is one key or keyless identity that may sign images.
// +kubebuilder:validation:XValidation:rule="has(self.key) != has(self.keyless)",message="exactly one of key or keyless must be set"
type Authority struct {
	// name identifies the authority in status, annotations and messages.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key verifies signatures made with a cosign key pair.
	// +optional
	Key *KeyAuthority `json:"key,omitempty"`

	// keyless verifies signatures made with a Fulcio certificate for an OIDC identity.
	// +optional
	Keyless *KeylessAuthority `json:"keyless,omitempty"`

	// transparencyLog is Ignore or Require (a Rekor inclusion proof must verify offline).
	// +kubebuilder:default=Ignore
	// +optional
	TransparencyLog TransparencyLogRule `json:"transparencyLog,omitempty"`
}

// KeyAuthority holds a public key, inline or in a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.publicKey) != has(self.secretRef)",message="exactly one of publicKey or secretRef must be set"
type KeyAuthority struct {
	// publicKey is a PEM public key (ECDSA P-256/P-384, RSA or Ed25519).
	// +kubebuilder:validation:MaxLength=16384
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN PUBLIC KEY-----')",message="publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----)"
	// +optional
	PublicKey string `json:"publicKey,omitempty"`

	// secretRef names a Secret key holding the PEM public key.
	// +optional
	SecretRef *SecretKeyReference `json:"secretRef,omitempty"`

	// trustRootRef names the ConfigMap or Secret whose Rekor logs (trusted_root.json, or rekor.pub)
	// check transparencyLog Require for this key, offline. Omitted, the Rekor key set on the
	// manager in SIGSTORE_REKOR_PUBLIC_KEY is used.
	// +optional
	TrustRootRef *TrustRootReference `json:"trustRootRef,omitempty"`
}

// SecretKeyReference points at one key of a Secret. Policies are cluster-scoped, so the
// namespace is required.
type SecretKeyReference struct {
	// namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`

	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret's data.
	// +kubebuilder:default="cosign.pub"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// KeylessAuthority verifies signatures made with short-lived Fulcio certificates.
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="exactly one of subject or subjectRegExp must be set"
type KeylessAuthority struct {
	// issuer is the OIDC issuer URL that must appear in the certificate.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="issuer must be a URL such as https://token.actions.githubusercontent.com"
	// +required
	Issuer string `json:"issuer"`

	// subject is the exact certificate identity (SAN).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Subject string `json:"subject,omitempty"`

	// subjectRegExp is a regular expression (RE2) the certificate identity must match.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	SubjectRegExp string `json:"subjectRegExp,omitempty"`

	// trustRootRef names the ConfigMap or Secret holding trusted_root.json (sigstore's trusted
	// root: Fulcio CAs, Rekor and CT logs, timestamp authorities), or the older fulcio.pem,
	// rekor.pub and ctlog.pub, so that verification works offline.
	// +required
	TrustRootRef TrustRootReference `json:"trustRootRef"`
}

// TrustRootReference points at the object holding a sigstore trust root.
type TrustRootReference struct {
	// kind of the object: ConfigMap (default) or Secret.
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +kubebuilder:default=ConfigMap
	// +optional
	Kind string `json:"kind,omitempty"`

	// namespace of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`

	// name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// RuntimeRules lock running pods down.
type RuntimeRules struct {
	// exec governs pods/exec and pods/attach.
	// +kubebuilder:default=Deny
	// +optional
	Exec AllowDeny `json:"exec,omitempty"`

	// portForward governs pods/portforward.
	// +kubebuilder:default=Allow
	// +optional
	PortForward AllowDeny `json:"portForward,omitempty"`

	// ephemeralContainers governs adding ephemeral containers (kubectl debug into a pod).
	// +kubebuilder:default=Deny
	// +optional
	EphemeralContainers AllowDeny `json:"ephemeralContainers,omitempty"`

	// privileged governs privileged containers, host namespaces, hostPath volumes, privilege
	// escalation and capabilities beyond the Pod Security baseline set.
	// +kubebuilder:default=Deny
	// +optional
	Privileged AllowDeny `json:"privileged,omitempty"`

	// readOnlyRootFilesystem, when Require, rejects containers whose root filesystem is writable.
	// +kubebuilder:default=Ignore
	// +optional
	ReadOnlyRootFilesystem IgnoreRequire `json:"readOnlyRootFilesystem,omitempty"`

	// approvals is how many users other than the requester must approve an AccessGrant (with an
	// AccessApproval) before it lets anyone into a pod under this policy: 0 (default) to 3.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3
	// +optional
	Approvals int32 `json:"approvals,omitempty"`
}

// ConfigRules treat the ConfigMaps and Secrets a pod uses (volumes, projected volumes, envFrom,
// env valueFrom) as part of what was deployed.
type ConfigRules struct {
	// mutable is Replace (default: a pod whose ConfigMaps or Secrets change data after it was
	// admitted has drifted, check ConfigChange, and is replaced like any drift), Deny (pods may
	// use only ConfigMaps and Secrets with immutable: true; the denial names each mutable one)
	// or Ignore (no config rule).
	// +kubebuilder:default=Replace
	// +optional
	Mutable ConfigMutability `json:"mutable,omitempty"`
}

// DriftRules say how drifted pods are handled.
type DriftRules struct {
	// action is Replace (evict drifted pods) or Report. In mode Audit it is always Report.
	// +kubebuilder:default=Replace
	// +optional
	Action DriftAction `json:"action,omitempty"`

	// checks are the drift checks to run; default all but WritableLayer, which is opt-in.
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:default={ImageDigest,EphemeralContainers,InteractiveAccess,SpecChange,Unverified,ConfigChange}
	// +optional
	Checks []DriftCheck `json:"checks,omitempty"`

	// writableLayerLimit is what a container may write into its writable layer (files added or
	// changed outside its volumes, as the kubelet's stats summary counts them) before it has
	// drifted under the WritableLayer check. A fresh container reads a few KiB.
	// +kubebuilder:default="1Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="writableLayerLimit must be more than 0"
	// +optional
	WritableLayerLimit *resource.Quantity `json:"writableLayerLimit,omitempty"`

	// jobPods says whether drifted pods of Jobs are replaced: Report (default) tells, because a
	// Job pod evicted mid-run may redo work that is not idempotent and counts towards the Job's
	// backoffLimit; Replace evicts them like any other pod (the Job controller starts a new one).
	// +kubebuilder:default=Report
	// +optional
	JobPods DriftAction `json:"jobPods,omitempty"`

	// maxDriftedPercent is the circuit breaker: when more than this share of the matched pods
	// is drifted at once, nothing is replaced until the share falls.
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDriftedPercent *int32 `json:"maxDriftedPercent,omitempty"`

	// evictUnadmittable says what happens to a drifted pod whose replacement would be denied
	// now (its owner's pod template, or a bare pod's admitted spec, fails admission): false
	// (default) keeps the pod and reports it (ReplacementWouldBeDenied), so that replacing it
	// cannot take the workload down; true evicts it anyway, still one pod of an owner at a time,
	// for teams that rank a revoked signature above availability.
	// +kubebuilder:default=false
	// +optional
	EvictUnadmittable *bool `json:"evictUnadmittable,omitempty"`
}

// ImmutabilityPolicyStatus is the observed state of an ImmutabilityPolicy.
type ImmutabilityPolicyStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, RemediationAllowed, ReplacementsProceeding and AccessReviewed; Stalled
	// (only an edit helps) or Reconciling (retried, waiting) for kstatus.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// matchedPods is the number of pods the policy currently matches.
	// +kubebuilder:default=0
	// +optional
	MatchedPods int32 `json:"matchedPods"`

	// driftedPods is the number of matched pods currently drifted.
	// +kubebuilder:default=0
	// +optional
	DriftedPods int32 `json:"driftedPods"`

	// replacedPods is the number of pods replaced since the policy was created.
	// +kubebuilder:default=0
	// +optional
	ReplacedPods int64 `json:"replacedPods"`

	// heldPods is the number of drifted pods kept running because replacing them now would
	// hurt the workload: their replacement would be denied, or their owner has not recovered
	// from the last replacement. Condition ReplacementsProceeding says which and why.
	// +kubebuilder:default=0
	// +optional
	HeldPods int32 `json:"heldPods"`

	// accessFindings is the number of users, groups and service accounts whose RBAC lets them
	// reach pods past Fixity (condition AccessReviewed names them; each is an Event on the
	// binding that names it).
	// +kubebuilder:default=0
	// +optional
	AccessFindings int32 `json:"accessFindings"`
}

// ImmutabilityPolicy says what may run in the namespaces it matches, and how pods that drift
// from what was admitted are handled.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipol,categories=fixity
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedPods`
// +kubebuilder:printcolumn:name="Drifted",type=integer,JSONPath=`.status.driftedPods`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImmutabilityPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired behaviour.
	// +required
	Spec ImmutabilityPolicySpec `json:"spec"`

	// status is the observed state.
	// A new object reads status {observedGeneration: 0} until the operator writes it, so
	// kstatus and Argo CD see it in progress rather than current, and counts print 0.
	// +kubebuilder:default={}
	// +optional
	Status ImmutabilityPolicyStatus `json:"status,omitempty"`
}

// ImmutabilityPolicyList is a list of ImmutabilityPolicy.
// +kubebuilder:object:root=true
type ImmutabilityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImmutabilityPolicy `json:"items"`
}

// GetConditions returns the status conditions, for generic condition helpers.
func (p *ImmutabilityPolicy) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the status conditions.
func (p *ImmutabilityPolicy) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// SetObservedGeneration records the generation the status was computed for.
func (p *ImmutabilityPolicy) SetObservedGeneration(gen int64) { p.Status.ObservedGeneration = gen }
