package drift

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	detected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fixity_drift_detected_total",
		Help: "Pods found drifted, by policy and drift check.",
	}, []string{"policy", "check"})
	replacements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fixity_drift_replacements_total",
		Help: "Drifted pods replaced, by policy and how (evicted, recreated).",
	}, []string{"policy", "method"})
	evictionsBlocked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fixity_drift_evictions_blocked_total",
		Help: "Evictions of drifted pods refused because of a PodDisruptionBudget, by policy.",
	}, []string{"policy"})
	breakerOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fixity_drift_circuit_breaker_open",
		Help: "1 while a policy's circuit breaker stops replacements (too many pods drifted), else 0.",
	}, []string{"policy"})
)

func init() {
	metrics.Registry.MustRegister(detected, replacements, evictionsBlocked, breakerOpen)
}
