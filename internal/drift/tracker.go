package drift

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// PodState is what the last look at one pod found.
type PodState struct {
	// Findings per name of a policy that matches the pod; a matching policy under which the pod
	// is clean has an empty entry.
	Findings map[string][]Finding
	// Generations holds, per policy name, the policy generation the findings are for.
	Generations map[string]int64
	// Held is set while the drifted pod is kept running because replacing it now would hurt
	// its workload; nil otherwise.
	Held *Hold
}

// Hold says why a drifted pod is kept: its replacement would be denied, or its owner is stuck.
type Hold struct {
	// Reason is fixityv1.ReplacementWouldBeDeniedReason or fixityv1.ReplacementStuckReason.
	Reason string
	// Message says what to fix, naming the owner.
	Message string
	// Policies are the policies that would replace the pod.
	Policies []string
}

// EvaluatedUnder reports whether the state holds findings of generation gen of policy.
func (s PodState) EvaluatedUnder(policy string, gen int64) bool {
	g, ok := s.Generations[policy]
	return ok && g == gen
}

// Drifted reports whether the pod is drifted under any policy.
func (s PodState) Drifted() bool {
	for _, fs := range s.Findings {
		if len(fs) > 0 {
			return true
		}
	}
	return false
}

// Tracker keeps what drift detection found for every pod it has looked at, by name. It is rebuilt from
// the cluster after a restart (every pod is looked at again), so it only ever speeds things up:
// decisions that must survive a restart (who is being replaced) are read from the cluster.
type Tracker struct {
	mu   sync.RWMutex
	pods map[types.NamespacedName]PodState
	// OnChange is called, outside the lock, with the names of the policies whose counts changed.
	OnChange func(policies []string)
	// OnPod is called, outside the lock, with the pod whose findings changed or that is gone
	// (the reports are kept current from it).
	OnPod func(pod types.NamespacedName)
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{pods: map[types.NamespacedName]PodState{}}
}

// Set records the state of a pod and reports whether it changed. A hold (SetHeld) is kept while
// the pod stays drifted.
func (t *Tracker) Set(key types.NamespacedName, s PodState) bool {
	t.mu.Lock()
	old, had := t.pods[key]
	if s.Held == nil && s.Drifted() {
		s.Held = old.Held
	}
	if t.pods == nil { // a zero Tracker works too
		t.pods = map[types.NamespacedName]PodState{}
	}
	t.pods[key] = s
	t.mu.Unlock()
	changed := !had || !equalState(old, s)
	if changed {
		t.notify(key, old, s)
	}
	return changed
}

// Forget drops a pod that is gone.
func (t *Tracker) Forget(key types.NamespacedName) {
	t.mu.Lock()
	old, had := t.pods[key]
	delete(t.pods, key)
	t.mu.Unlock()
	if had {
		t.notify(key, old, PodState{})
	}
}

// Get returns the state of a pod, if it has been looked at.
func (t *Tracker) Get(key types.NamespacedName) (PodState, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.pods[key]
	return s, ok
}

// Counts are a policy's tallies of the tracked pods.
type Counts struct {
	// Matched are the pods the policy matches, Drifted those drifted under it.
	Matched, Drifted int
	// Inferred are the drifted pods with a finding the circuit breaker counts (Inferred).
	Inferred int
}

// Counts returns how many tracked pods policy matches and how many of them are drifted under it.
func (t *Tracker) Counts(policy string) Counts {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var c Counts
	for _, s := range t.pods {
		fs, ok := s.Findings[policy]
		if !ok {
			continue
		}
		c.Matched++
		if len(fs) > 0 {
			c.Drifted++
		}
		if Inferred(fs) {
			c.Inferred++
		}
	}
	return c
}

// SetHeld records why a tracked pod is held (nil: it is not) and reports whether that changed.
// An untracked pod is left alone.
func (t *Tracker) SetHeld(key types.NamespacedName, h *Hold) bool {
	t.mu.Lock()
	s, ok := t.pods[key]
	if !ok || equalHold(s.Held, h) {
		t.mu.Unlock()
		return false
	}
	old := s
	s.Held = h
	t.pods[key] = s
	t.mu.Unlock()
	t.notify(key, old, s)
	return true
}

// Held returns the holds of the pods policy would replace, by pod.
func (t *Tracker) Held(policy string) map[types.NamespacedName]Hold {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[types.NamespacedName]Hold{}
	for key, s := range t.pods {
		if s.Held != nil && slices.Contains(s.Held.Policies, policy) && len(s.Findings[policy]) > 0 {
			out[key] = *s.Held
		}
	}
	return out
}

// Drifted returns the pods drifted under policy.
func (t *Tracker) Drifted(policy string) []types.NamespacedName {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []types.NamespacedName
	for key, s := range t.pods {
		if len(s.Findings[policy]) > 0 {
			out = append(out, key)
		}
	}
	return out
}

func (t *Tracker) notify(key types.NamespacedName, old, updated PodState) {
	if t.OnPod != nil {
		t.OnPod(key)
	}
	if t.OnChange == nil {
		return
	}
	var names []string
	for _, s := range []PodState{old, updated} {
		for p := range s.Findings {
			if !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
	}
	if len(names) > 0 {
		t.OnChange(names)
	}
}

func equalHold(a, b *Hold) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Reason == b.Reason && a.Message == b.Message && slices.Equal(a.Policies, b.Policies)
}

func equalState(a, b PodState) bool {
	if !equalHold(a.Held, b.Held) {
		return false
	}
	if len(a.Findings) != len(b.Findings) || len(a.Generations) != len(b.Generations) {
		return false
	}
	for p, g := range a.Generations {
		if b.Generations[p] != g {
			return false
		}
	}
	for p, fa := range a.Findings {
		fb, ok := b.Findings[p]
		if !ok || !slices.Equal(fa, fb) {
			return false
		}
	}
	return true
}
