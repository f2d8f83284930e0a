package nodedrift

import (
	"slices"
	"sync"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Tracker remembers, per node, under which generation of which policy it was last evaluated and
// whether it was found drifted: the circuit breaker's counts, and the census that says when
// they can be trusted.
type Tracker struct {
	mu    sync.Mutex
	nodes map[string]map[string]verdict
	// reported are the findings last told per node.
	reported map[string][]fixityv1.NodeDriftFinding
}

type verdict struct {
	generation int64
	drifted    bool
}

// Evaluation is one policy's verdict on a node.
type Evaluation struct {
	Policy     string
	Generation int64
	Drifted    bool
}

// Set records the verdicts on node of the policies that match it now (others are dropped).
func (t *Tracker) Set(node string, evals []Evaluation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes == nil {
		t.nodes = map[string]map[string]verdict{}
	}
	m := make(map[string]verdict, len(evals))
	for _, e := range evals {
		m[e.Policy] = verdict{generation: e.Generation, drifted: e.Drifted}
	}
	t.nodes[node] = m
}

// Policies returns the policies node was last evaluated under, sorted.
func (t *Tracker) Policies(node string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.nodes[node]))
	for p := range t.nodes[node] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Forget drops a node that is gone or matched by no policy.
func (t *Tracker) Forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.nodes, node)
	delete(t.reported, node)
}

// Report records fs as the node's findings and reports whether they differ from those last
// recorded: Events and metrics are told once per change.
func (t *Tracker) Report(node string, fs []fixityv1.NodeDriftFinding) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reported == nil {
		t.reported = map[string][]fixityv1.NodeDriftFinding{}
	}
	before, seen := t.reported[node]
	t.reported[node] = fs
	return !seen && len(fs) > 0 || seen && !SameFindings(before, fs)
}

// EvaluatedUnder reports whether node was evaluated under generation gen of policy.
func (t *Tracker) EvaluatedUnder(node, policy string, gen int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.nodes[node][policy]
	return ok && v.generation == gen
}

// Counts returns how many nodes policy matched when last evaluated, and how many of them were
// drifted.
func (t *Tracker) Counts(policy string) (matched, drifted int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.nodes {
		if v, ok := m[policy]; ok {
			matched++
			if v.drifted {
				drifted++
			}
		}
	}
	return matched, drifted
}
