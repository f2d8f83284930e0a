package nodedrift

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Ready reports whether the node's kubelet reports Ready: a baseline is recorded only then, so
// that a node still booting is not taken as it will run.
func Ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Matches reports whether p selects node. A selector that does not parse matches nothing (the
// policy is reported not Ready).
func Matches(p *fixityv1.NodeImmutabilityPolicy, node *corev1.Node) bool {
	if p.Spec.NodeSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
	return err == nil && sel.Matches(labels.Set(node.Labels))
}

// WatchedLabels is the union of the watched label keys of policies, sorted.
func WatchedLabels(policies []fixityv1.NodeImmutabilityPolicy) []string {
	var keys []string
	for i := range policies {
		keys = append(keys, policies[i].Spec.WatchedLabels...)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// Record is the baseline of node as it is now, with the label keys the policies watch. Fixity's
// own taint is never recorded: a node it cordoned is not recorded as if born cordoned.
func Record(node *corev1.Node, policies []fixityv1.NodeImmutabilityPolicy, now metav1.Time) *fixityv1.NodeBaseline {
	info := node.Status.NodeInfo
	b := &fixityv1.NodeBaseline{
		ObjectMeta: metav1.ObjectMeta{
			Name: node.Name,
			// Garbage-collected with its Node. Not blockOwnerDeletion: that would need rights
			// on nodes/finalizers, and nothing must hold a Node back.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
		},
		Spec: fixityv1.NodeBaselineSpec{
			FormatVersion: fixityv1.BaselineFormatVersion,
			NodeUID:       string(node.UID),
			ProviderID:    node.Spec.ProviderID,
			NodeInfo: fixityv1.NodeInfoRecord{
				KernelVersion: info.KernelVersion, OSImage: info.OSImage, KubeletVersion: info.KubeletVersion,
				ContainerRuntimeVersion: info.ContainerRuntimeVersion,
				MachineID:               info.MachineID, SystemUUID: info.SystemUUID, BootID: info.BootID,
			},
			WatchedLabels: WatchedLabels(policies),
			RecordedAt:    now,
		},
	}
	for _, t := range node.Spec.Taints {
		if Transient(t.Key) {
			continue
		}
		b.Spec.Taints = append(b.Spec.Taints, fixityv1.BaselineTaint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	for _, k := range b.Spec.WatchedLabels {
		if v, ok := node.Labels[k]; ok {
			if b.Spec.Labels == nil {
				b.Spec.Labels = map[string]string{}
			}
			b.Spec.Labels[k] = v
		}
	}
	return b
}

// transientTaintPrefixes are the taints that come and go by design: Kubernetes' own conditions
// (not-ready, unreachable, unschedulable, pressure), the cloud provider's start-up taint,
// Karpenter's and the cluster autoscaler's, and Fixity's own. A node is never recorded with
// them, so their normal removal is not taken for a recorded taint removed.
var transientTaintPrefixes = []string{
	"node.kubernetes.io/", "node.cloudprovider.kubernetes.io/", "karpenter.sh/",
	"ToBeDeletedByClusterAutoscaler", "DeletionCandidateOfClusterAutoscaler", fixityv1.DriftedTaint,
}

// Transient reports whether a taint with this key comes and goes by design.
func Transient(key string) bool {
	return slices.ContainsFunc(transientTaintPrefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

// Stale says why b cannot be compared with node and must be recorded again, or "": it is of
// another Node (one created again under the same name), or of another format version (the
// operator was upgraded: never taken for drift).
func Stale(b *fixityv1.NodeBaseline, node *corev1.Node) string {
	switch {
	case b.Spec.NodeUID != string(node.UID):
		return fmt.Sprintf("it was recorded for another Node of this name (UID %s, now %s)", b.Spec.NodeUID, node.UID)
	case b.Spec.FormatVersion < fixityv1.BaselineFormatVersion:
		return fmt.Sprintf("it was recorded in format %d and the operator now records format %d", b.Spec.FormatVersion, fixityv1.BaselineFormatVersion)
	}
	return ""
}

// none stands for a value that is not there, in findings.
const none = "<none>"

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// Compare lists how node differs from b under p's checks and expectations. It never fails: an
// expectation that does not compile is reported by the policy controller and skipped here.
func Compare(b *fixityv1.NodeBaseline, node *corev1.Node, p *fixityv1.NodeImmutabilityPolicy) []fixityv1.NodeDriftFinding {
	var out []fixityv1.NodeDriftFinding
	add := func(check fixityv1.NodeCheck, recorded, observed string) {
		if recorded != observed {
			out = append(out, fixityv1.NodeDriftFinding{Check: check, Recorded: orNone(recorded), Observed: orNone(observed)})
		}
	}
	info, rec := node.Status.NodeInfo, b.Spec.NodeInfo
	checks := p.Spec.Checks
	if len(checks) == 0 {
		checks = fixityv1.DefaultNodeChecks
	}
	for _, c := range checks {
		switch c {
		case fixityv1.CheckKernelVersion:
			add(c, rec.KernelVersion, info.KernelVersion)
		case fixityv1.CheckOSImage:
			add(c, rec.OSImage, info.OSImage)
		case fixityv1.CheckKubeletVersion:
			add(c, rec.KubeletVersion, info.KubeletVersion)
		case fixityv1.CheckContainerRuntimeVersion:
			add(c, rec.ContainerRuntimeVersion, info.ContainerRuntimeVersion)
		case fixityv1.CheckIdentity:
			add(c, "machineID "+rec.MachineID, "machineID "+info.MachineID)
			add(c, "systemUUID "+rec.SystemUUID, "systemUUID "+info.SystemUUID)
			if b.Spec.ProviderID != "" { // providerID may be set once, after registration
				add(c, "providerID "+b.Spec.ProviderID, "providerID "+node.Spec.ProviderID)
			}
		case fixityv1.CheckReboot:
			add(c, "bootID "+rec.BootID, "bootID "+info.BootID)
		case fixityv1.CheckLabels:
			for _, k := range p.Spec.WatchedLabels {
				if !slices.Contains(b.Spec.WatchedLabels, k) {
					continue // not watched when recorded: nothing to compare with
				}
				add(c, labelValue(b.Spec.Labels, k), labelValue(node.Labels, k))
			}
		case fixityv1.CheckTaints:
			for _, t := range b.Spec.Taints {
				if !hasTaint(node.Spec.Taints, t) {
					add(c, taintString(t), "removed")
				}
			}
		}
	}
	if e := p.Spec.Expect; e != nil {
		if len(e.KubeletVersions) > 0 && !slices.Contains(e.KubeletVersions, info.KubeletVersion) {
			add(fixityv1.CheckKubeletVersion, "one of "+strings.Join(e.KubeletVersions, ", ")+" (expect)", info.KubeletVersion)
		}
		if e.OSImageRegExp != "" {
			if re, err := regexp.Compile(`^(?:` + e.OSImageRegExp + `)$`); err == nil && !re.MatchString(info.OSImage) {
				add(fixityv1.CheckOSImage, "matching "+e.OSImageRegExp+" (expect)", info.OSImage)
			}
		}
	}
	return out
}

func labelValue(m map[string]string, k string) string {
	v, ok := m[k]
	if !ok {
		return k + " " + none
	}
	return k + "=" + v
}

func taintString(t fixityv1.BaselineTaint) string {
	if t.Value == "" {
		return t.Key + ":" + string(t.Effect)
	}
	return t.Key + "=" + t.Value + ":" + string(t.Effect)
}

func hasTaint(taints []corev1.Taint, t fixityv1.BaselineTaint) bool {
	return slices.ContainsFunc(taints, func(n corev1.Taint) bool {
		return n.Key == t.Key && n.Value == t.Value && n.Effect == t.Effect
	})
}

// Merge is the findings of several policies, each difference once, keeping the time each was
// first seen from before (now for new ones), in a stable order.
func Merge(before []fixityv1.NodeDriftFinding, now metav1.Time, sets ...[]fixityv1.NodeDriftFinding) []fixityv1.NodeDriftFinding {
	var out []fixityv1.NodeDriftFinding
	for _, set := range sets {
		for _, f := range set {
			if slices.ContainsFunc(out, f.Same) {
				continue
			}
			f.Since = now
			if i := slices.IndexFunc(before, f.Same); i >= 0 {
				f.Since = before[i].Since
			}
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b fixityv1.NodeDriftFinding) int {
		return strings.Compare(string(a.Check)+a.Recorded, string(b.Check)+b.Recorded)
	})
	return out
}

// SameFindings reports whether a and b name the same differences (ignoring when seen).
func SameFindings(a, b []fixityv1.NodeDriftFinding) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(f fixityv1.NodeDriftFinding) bool {
		return !slices.ContainsFunc(b, f.Same)
	})
}

// Describe is the findings as one line for Events and logs: check, recorded and observed.
func Describe(fs []fixityv1.NodeDriftFinding) string {
	lines := make([]string, len(fs))
	for i, f := range fs {
		lines[i] = fmt.Sprintf("%s: recorded %q, observed %q", f.Check, f.Recorded, f.Observed)
	}
	return strings.Join(lines, "; ")
}
