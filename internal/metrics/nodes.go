package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Node drift metric names.
const (
	NodeDriftDetectedName = "fixity_node_drift_detected_total"
	NodesDriftedName      = "fixity_node_drifted"
	NodesReplacingName    = "fixity_node_replacing"
	NodeDrainsStuckName   = "fixity_node_drains_stuck"
	NodeBreakerOpenName   = "fixity_node_circuit_breaker_open"
	NodeReplacementsName  = "fixity_node_replacements_total"
)

// Label values of NodeReplacements' method.
const (
	MethodNodeClaim = "nodeclaim"
	MethodMachine   = "machine"
	MethodDrained   = "drained"
)

var (
	// NodeDriftDetected counts nodes found drifted, by policy and check.
	NodeDriftDetected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NodeDriftDetectedName,
		Help: "Nodes found changed in place, by node policy and check.",
	}, []string{"policy", "check"})
	// NodesDrifted is how many matched nodes differ from their baseline, by policy and check.
	NodesDrifted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NodesDriftedName,
		Help: "Matched nodes that differ from their baseline now, by node policy and check.",
	}, []string{"policy", "check"})
	// NodesReplacing is how many nodes Fixity has cordoned under a policy that are not gone.
	NodesReplacing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NodesReplacingName,
		Help: "Nodes cordoned by Fixity under a node policy and not gone yet (what maxUnavailable counts).",
	}, []string{"policy"})
	// NodeDrainsStuck is how many of those did not drain within drainTimeout.
	NodeDrainsStuck = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NodeDrainsStuckName,
		Help: "Nodes whose drain did not finish within drainTimeout, by node policy.",
	}, []string{"policy"})
	// NodeBreakerOpen is 1 while a node policy's circuit breaker is open.
	NodeBreakerOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: NodeBreakerOpenName,
		Help: "1 while a node policy's circuit breaker stops replacements (too many nodes drifted), else 0.",
	}, []string{"policy"})
	// NodeReplacements counts drifted nodes handed over or drained, by policy and method.
	NodeReplacements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: NodeReplacementsName,
		Help: "Drifted nodes replaced, by node policy and how (nodeclaim deleted, machine annotated, drained with no provisioner).",
	}, []string{"policy", "method"})
)

func init() {
	metrics.Registry.MustRegister(NodeDriftDetected, NodesDrifted, NodesReplacing, NodeDrainsStuck, NodeBreakerOpen, NodeReplacements)
}

// ForgetNodePolicy drops a deleted node policy's series.
func ForgetNodePolicy(name string) {
	for _, v := range []*prometheus.MetricVec{NodeDriftDetected.MetricVec, NodesDrifted.MetricVec,
		NodesReplacing.MetricVec, NodeDrainsStuck.MetricVec, NodeBreakerOpen.MetricVec, NodeReplacements.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"policy": name})
	}
}
