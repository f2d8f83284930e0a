package v1alpha1

// Condition types. Ready is the summary that kstatus, Argo CD and Flux read.
const (
	// ReadyCondition reports whether the object is being enforced as written.
	ReadyCondition = "Ready"
	// RemediationAllowedCondition reports whether drift remediation may replace pods now; it is
	// False while the circuit breaker is open.
	RemediationAllowedCondition = "RemediationAllowed"
)

// Condition reasons.
const (
	// ActiveReason means the policy is valid and enforced.
	ActiveReason = "Active"
	// InvalidSpecReason means the spec passed schema validation but cannot be enforced (for example a
	// subjectRegExp that does not compile); the message names the field.
	InvalidSpecReason = "InvalidSpec"
	// TooManyDriftedReason means more than maxDriftedPercent of the matched pods are drifted.
	TooManyDriftedReason = "TooManyDrifted"
	// WithinBudgetReason means remediation may proceed.
	WithinBudgetReason = "WithinBudget"
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
)

// OperatorNamespace is the namespace the operator runs in; it is never enforced.
const OperatorNamespace = "fixity-system"
