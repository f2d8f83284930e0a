package policy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// controlPlane are never enforced, whatever a policy says: enforcing them could take the cluster
// down. The operator's own namespace is never enforced either (Matcher.OperatorNamespace), or
// the operator could lock itself out of its own repair.
var controlPlane = []string{"kube-system", "kube-public", "kube-node-lease"}

// AlwaysExcludedNamespaces returns the namespaces no policy may cover when the operator runs in
// operatorNamespace (empty: fixity-system).
func AlwaysExcludedNamespaces(operatorNamespace string) []string {
	if operatorNamespace == "" {
		operatorNamespace = fixityv1.OperatorNamespace
	}
	return append(slices.Clone(controlPlane), operatorNamespace)
}

// Excluded reports whether namespace is one that no policy may cover.
func (m *Matcher) Excluded(namespace string) bool {
	own := m.OperatorNamespace
	if own == "" {
		own = fixityv1.OperatorNamespace
	}
	return namespace == own || slices.Contains(controlPlane, namespace)
}

// MatchesNamespace reports whether p applies to some pods in ns (its podSelector aside).
func (m *Matcher) MatchesNamespace(p *fixityv1.ImmutabilityPolicy, ns *corev1.Namespace) (bool, error) {
	if m.Excluded(ns.Name) || slices.Contains(p.Spec.Match.ExcludeNamespaces, ns.Name) {
		return false, nil
	}
	ok, err := m.selectorMatches(p, false, ns.Labels)
	if err != nil {
		return false, fmt.Errorf("policy %s: spec.match.namespaceSelector: %w", p.Name, err)
	}
	return ok, nil
}

// Matches reports whether p applies to a pod with podLabels in ns. A selector that does not
// parse is an error naming the policy and field, never a silent non-match.
func (m *Matcher) Matches(p *fixityv1.ImmutabilityPolicy, ns *corev1.Namespace, podLabels map[string]string) (bool, error) {
	ok, err := m.MatchesNamespace(p, ns)
	if err != nil || !ok {
		return false, err
	}
	ok, err = m.selectorMatches(p, true, podLabels)
	if err != nil {
		return false, fmt.Errorf("policy %s: spec.match.podSelector: %w", p.Name, err)
	}
	return ok, nil
}

// selectorMatches matches p's pod or namespace selector against set, treating an omitted
// selector as "everything", as the API documents.
func (m *Matcher) selectorMatches(p *fixityv1.ImmutabilityPolicy, pod bool, set map[string]string) (bool, error) {
	sel := p.Spec.Match.NamespaceSelector
	if pod {
		sel = p.Spec.Match.PodSelector
	}
	if sel == nil {
		return true, nil
	}
	s, err := m.selectors.get(p, pod, sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(set)), nil
}

// selectorKey names one selector of one generation of a policy: a policy's spec, and so its
// selectors, never changes within a generation.
type selectorKey struct {
	uid        types.UID
	generation int64
	pod        bool
}

// maxSelectors bounds the cache: old generations are not evicted one by one, the cache is
// emptied when it is full, which costs one parse per policy afterwards.
const maxSelectors = 1024

// selectorCache keeps parsed label selectors. Parsing validates every key and value (regular
// expressions) and was a quarter of the mutating webhook's time with a cached verdict.
type selectorCache struct {
	m sync.Map
	n atomic.Int64
}

func (c *selectorCache) get(p *fixityv1.ImmutabilityPolicy, pod bool, sel *metav1.LabelSelector) (labels.Selector, error) {
	// Objects built by hand (tests, offline evaluation) have no identity to key on.
	if p.UID == "" || p.Generation == 0 {
		return metav1.LabelSelectorAsSelector(sel)
	}
	k := selectorKey{p.UID, p.Generation, pod}
	if s, ok := c.m.Load(k); ok {
		return s.(labels.Selector), nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	if c.n.Add(1) > maxSelectors {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, s)
	return s, nil
}

// Matcher finds the policies that apply to a pod, reading policies and namespaces through r
// (normally the manager's cache).
type Matcher struct {
	Reader client.Reader
	// OperatorNamespace is the operator's own namespace, never enforced; empty means
	// fixity-system.
	OperatorNamespace string

	selectors selectorCache
}

// ForNamespace returns the policies that apply to some pods in namespace.
func (m *Matcher) ForNamespace(ctx context.Context, namespace string) ([]fixityv1.ImmutabilityPolicy, error) {
	return m.find(ctx, namespace, m.MatchesNamespace)
}

// ForPod returns the policies that apply to a pod with podLabels in namespace, sorted by name so
// that messages are stable. Errors (namespace unreadable, bad selector) are returned so that
// callers fail closed.
func (m *Matcher) ForPod(ctx context.Context, namespace string, podLabels map[string]string) ([]fixityv1.ImmutabilityPolicy, error) {
	return m.find(ctx, namespace, func(p *fixityv1.ImmutabilityPolicy, ns *corev1.Namespace) (bool, error) {
		return m.Matches(p, ns, podLabels)
	})
}

func (m *Matcher) find(ctx context.Context, namespace string, match func(*fixityv1.ImmutabilityPolicy, *corev1.Namespace) (bool, error)) ([]fixityv1.ImmutabilityPolicy, error) {
	if m.Excluded(namespace) {
		return nil, nil
	}
	var list fixityv1.ImmutabilityPolicyList
	// Policies are only read, never changed, on the admission path: no deep copy per request.
	if err := m.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing ImmutabilityPolicies: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	var ns corev1.Namespace
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("reading namespace %q: %w", namespace, err)
	}
	var out []fixityv1.ImmutabilityPolicy
	for i := range list.Items {
		p := &list.Items[i]
		ok, err := match(p, &ns)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b fixityv1.ImmutabilityPolicy) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}
