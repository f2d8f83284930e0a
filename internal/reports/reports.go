package reports

import (
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/podconfig"
)

// Entry is the verdict of one rule of one policy on one object.
type Entry struct {
	Policy  string
	Rule    string
	Result  openreports.Result
	Subject corev1.ObjectReference
	Message string
	// Properties say more, e.g. the bindings of an access finding.
	Properties map[string]string
}

// failed is the result of a broken rule: fail under Enforce, warn under Audit (which never denies
// nor replaces, and whose results are not scored).
func failed(mode fixityv1.PolicyMode) openreports.Result {
	if mode == fixityv1.ModeAudit {
		return openreports.Result("warn")
	}
	return openreports.Result("fail")
}

const pass = openreports.Result("pass")

// specRules are the admission rules of p that can be judged from a running pod's spec alone
// (the image rules are judged again by drift's Unverified check).
func specRules(p *fixityv1.ImmutabilityPolicy) []string {
	var out []string
	if p.Spec.Runtime.Privileged != fixityv1.Allow {
		out = append(out, lockdown.RulePrivileged)
	}
	if p.Spec.Runtime.ReadOnlyRootFilesystem == fixityv1.Require {
		out = append(out, lockdown.RuleReadOnlyRootFilesystem)
	}
	if podconfig.Mutability(p) == fixityv1.ConfigDeny {
		out = append(out, podconfig.RuleMutable)
	}
	return out
}

// PodRef is how a result names a pod.
func PodRef(pod *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
}

// Pod returns the results of a pod that drift detection has looked at: for every policy that
// matches it (st.Findings), one per admission rule its spec is judged by (violations: what the
// pod's spec breaks now) and one per drift check the policy runs.
func Pod(pod *corev1.Pod, st drift.PodState, policies map[string]*fixityv1.ImmutabilityPolicy, violations []admit.Violation) []Entry {
	ref := PodRef(pod)
	var out []Entry
	for _, name := range sortedKeys(st.Findings) {
		p, ok := policies[name]
		if !ok {
			continue // deleted since; the next look at the pod drops it
		}
		for _, rule := range specRules(p) {
			var lines []string
			for _, v := range violations {
				if v.Policy == name && v.Rule == rule {
					lines = append(lines, v.String())
				}
			}
			out = append(out, verdict(name, rule, p.Spec.Mode, ref, lines))
		}
		for _, check := range drift.Enabled(p) {
			var lines []string
			for _, f := range st.Findings[name] {
				if f.Check == check {
					lines = append(lines, f.Message)
				}
			}
			out = append(out, verdict(name, fixityv1.DriftRulePrefix+string(check), p.Spec.Mode, ref, lines))
		}
	}
	return out
}

// Node returns the results of a node: for every node policy it was last evaluated under, one per
// check the policy runs, failed by the node's findings of that check.
func Node(node *corev1.Node, findings []fixityv1.NodeDriftFinding, policies []*fixityv1.NodeImmutabilityPolicy) []Entry {
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}
	var out []Entry
	for _, p := range policies {
		checks := p.Spec.Checks
		if len(checks) == 0 {
			checks = fixityv1.DefaultNodeChecks
		}
		for _, check := range checks {
			var lines []string
			for _, f := range findings {
				if f.Check == check {
					lines = append(lines, string(f.Check)+" was "+quote(f.Recorded)+" and is now "+quote(f.Observed))
				}
			}
			out = append(out, verdict(p.Name, fixityv1.DriftRulePrefix+string(check), p.Spec.Mode, ref, lines))
		}
	}
	return out
}

func quote(s string) string { return `"` + s + `"` }

// Access returns the access review's findings: each a failed result on its subject.
func Access(fs []accessreview.Finding) []Entry {
	out := make([]Entry, 0, len(fs))
	for _, f := range fs {
		ref := corev1.ObjectReference{Kind: f.Subject.Kind, Name: f.Subject.Name, Namespace: f.Subject.Namespace}
		if f.Subject.Kind != "ServiceAccount" {
			ref.APIVersion = "rbac.authorization.k8s.io/v1"
		} else {
			ref.APIVersion = "v1"
		}
		e := Entry{Policy: fixityv1.AccessReviewPolicy, Rule: f.Door, Result: openreports.Result("fail"), Subject: ref, Message: f.String()}
		if b := accessreview.Granting(f); len(b) > 0 {
			e.Properties = map[string]string{"bindings": strings.Join(b, ", ")}
		}
		out = append(out, e)
	}
	return out
}

func verdict(policy, rule string, mode fixityv1.PolicyMode, ref corev1.ObjectReference, lines []string) Entry {
	e := Entry{Policy: policy, Rule: rule, Result: pass, Subject: ref}
	if len(lines) > 0 {
		e.Result, e.Message = failed(mode), strings.Join(lines, "; ")
	}
	return e
}

// Results turns entries into a report's results and summary. A result unchanged since previous
// keeps its timestamp, so an unchanged report is not written again. Failures come first, then
// warnings, then passes; beyond fixityv1.MaxReportResults results are left out (passes first),
// and the summary still counts every one.
func Results(entries []Entry, previous []openreports.ReportResult, now time.Time) ([]openreports.ReportResult, openreports.ReportSummary) {
	seen := make(map[string]openreports.ReportResult, len(previous))
	for _, r := range previous {
		seen[key(r)] = r
	}
	out := make([]openreports.ReportResult, 0, len(entries))
	var sum openreports.ReportSummary
	for _, e := range entries {
		r := openreports.ReportResult{
			Source: fixityv1.ReportSource, Policy: e.Policy, Rule: e.Rule, Result: e.Result,
			Scored: true, Subjects: []corev1.ObjectReference{e.Subject}, Description: truncate(e.Message),
			Properties: e.Properties,
			Timestamp:  metav1.Timestamp{Seconds: now.Unix()},
		}
		if e.Result == openreports.Result("warn") {
			r.Scored = false
		}
		if old, ok := seen[key(r)]; ok && old.Result == r.Result && old.Description == r.Description {
			r.Timestamp = old.Timestamp
		}
		switch e.Result {
		case "pass":
			sum.Pass++
		case "fail":
			sum.Fail++
		case "warn":
			sum.Warn++
		case "error":
			sum.Error++
		case "skip":
			sum.Skip++
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b openreports.ReportResult) int {
		return cmp.Or(cmp.Compare(rank(a.Result), rank(b.Result)),
			cmp.Compare(a.Subjects[0].Namespace, b.Subjects[0].Namespace), cmp.Compare(a.Subjects[0].Kind, b.Subjects[0].Kind),
			cmp.Compare(a.Subjects[0].Name, b.Subjects[0].Name), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Rule, b.Rule))
	})
	if len(out) > fixityv1.MaxReportResults {
		out = out[:fixityv1.MaxReportResults]
	}
	return out, sum
}

// maxDescription bounds a result's message, so that MaxReportResults of them fit in an object.
const maxDescription = 1024

func truncate(s string) string {
	if len(s) <= maxDescription {
		return s
	}
	cut := maxDescription - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// key identifies a result across reports: its subject, policy and rule.
func key(r openreports.ReportResult) string {
	var s corev1.ObjectReference
	if len(r.Subjects) > 0 {
		s = r.Subjects[0]
	}
	return strings.Join([]string{s.Kind, s.Namespace, s.Name, string(s.UID), r.Policy, r.Rule}, "|")
}

func rank(r openreports.Result) int {
	switch r {
	case "fail":
		return 0
	case "error":
		return 1
	case "warn":
		return 2
	case "pass":
		return 3
	}
	return 4
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
