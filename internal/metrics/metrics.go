package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metric names.
const (
	AdmissionViolationsName = "fixity_admission_violations_total"
	DriftDetectedName       = "fixity_drift_detected_total"
	DriftReplacementsName   = "fixity_drift_replacements_total"
	EvictionsBlockedName    = "fixity_drift_evictions_blocked_total"
	BreakerOpenName         = "fixity_drift_circuit_breaker_open"
	HeldPodsName            = "fixity_drift_held_pods"
	// DriftReplacedName counts replacements started, by policy and the check that found the pod.
	DriftReplacedName = "fixity_drift_replaced_total"
	// AdmissionDecisionsName counts the webhooks' answers; admission latency is
	// controller-runtime's controller_runtime_webhook_latency_seconds, by the same webhook path.
	AdmissionDecisionsName = "fixity_admission_decisions_total"
	AdmissionLatencyName   = "controller_runtime_webhook_latency_seconds"
	// ImageVerificationsName counts signature verifications; result "cached" is a cache hit.
	ImageVerificationsName = "fixity_image_verifications_total"
	// GrantsActiveName is the number of Active AccessGrants, by namespace.
	GrantsActiveName = "fixity_grants_active"
)

// Label values of AdmissionDecisions' decision.
const (
	DecisionAllowed = "allowed"
	// DecisionWarned is allowed with warnings (Audit).
	DecisionWarned  = "warned"
	DecisionDenied  = "denied"
	DecisionErrored = "errored"
)

// Label values of ImageVerifications' result.
const (
	VerificationCached   = "cached"
	VerificationVerified = "verified"
	VerificationRejected = "rejected"
	VerificationError    = "error"
)

// Label values of DriftReplacements' method.
const (
	MethodEvicted   = "evicted"
	MethodRecreated = "recreated"
)

var (
	// AdmissionViolations counts violations found by real admission decisions (not dry runs,
	// not reinvocations), by webhook, policy, rule and mode.
	AdmissionViolations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: AdmissionViolationsName,
		Help: "Policy violations found at admission, by webhook, policy, rule and mode (Enforce ones were denied, Audit ones warned).",
	}, []string{"webhook", "policy", "rule", "mode"})
	// DriftDetected counts pods found drifted, by policy and check.
	DriftDetected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: DriftDetectedName,
		Help: "Pods found drifted, by policy and drift check.",
	}, []string{"policy", "check"})
	// DriftReplacements counts drifted pods replaced, by policy and method.
	DriftReplacements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: DriftReplacementsName,
		Help: "Drifted pods replaced, by policy and how (evicted, recreated).",
	}, []string{"policy", "method"})
	// EvictionsBlocked counts evictions a PodDisruptionBudget refused, by policy.
	EvictionsBlocked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: EvictionsBlockedName,
		Help: "Evictions of drifted pods refused because of a PodDisruptionBudget, by policy.",
	}, []string{"policy"})
	// BreakerOpen is 1 while a policy's circuit breaker is open.
	BreakerOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: BreakerOpenName,
		Help: "1 while a policy's circuit breaker stops replacements (too many pods drifted), else 0.",
	}, []string{"policy"})
	// DriftReplaced counts drifted pods whose replacement started (evicted, or saved to be
	// recreated), by policy and each check that found them.
	DriftReplaced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: DriftReplacedName,
		Help: "Drifted pods whose replacement started (evicted, or saved to be recreated), by policy and drift check.",
	}, []string{"policy", "check"})
	// AdmissionDecisions counts the webhooks' answers to real (not dry-run) requests.
	AdmissionDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: AdmissionDecisionsName,
		Help: "Admission answers by webhook path and decision (allowed, warned, denied, errored); dry runs are not counted.",
	}, []string{"webhook", "decision"})
	// ImageVerifications counts image signature verifications by result.
	ImageVerifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ImageVerificationsName,
		Help: "Image signature verifications by result: cached (no registry call), verified, rejected or error.",
	}, []string{"result"})
	// HeldPods is the number of drifted pods a policy keeps because replacing them would hurt.
	HeldPods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: HeldPodsName,
		Help: "Drifted pods kept running because their replacement would be denied or their owner is stuck, by policy and reason.",
	}, []string{"policy", "reason"})
)

func init() {
	metrics.Registry.MustRegister(AdmissionViolations, DriftDetected, DriftReplacements, EvictionsBlocked, BreakerOpen, HeldPods,
		DriftReplaced, AdmissionDecisions, ImageVerifications, grantsActive)
}

// ForgetPolicy drops a deleted policy's series, so dashboards do not show it forever.
func ForgetPolicy(name string) {
	for _, v := range []*prometheus.MetricVec{AdmissionViolations.MetricVec, DriftDetected.MetricVec,
		DriftReplacements.MetricVec, EvictionsBlocked.MetricVec, BreakerOpen.MetricVec, HeldPods.MetricVec, DriftReplaced.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"policy": name})
	}
}
