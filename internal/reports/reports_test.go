package reports

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/onsi/gomega"
	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/test/builders"
)

func byRule(es []Entry) map[string]Entry {
	out := map[string]Entry{}
	for _, e := range es {
		out[e.Policy+" "+e.Rule] = e
	}
	return out
}

func TestPodHasAResultPerMatchingPolicyAndRule(t *testing.T) {
	g := gomega.NewWithT(t)
	enforce := builders.Policy("prod", func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Drift.Checks = []fixityv1.DriftCheck{fixityv1.CheckImageDigest, fixityv1.CheckSpecChange}
	})
	audit := builders.Policy("audit", func(s *fixityv1.ImmutabilityPolicySpec) {
		s.Mode = fixityv1.ModeAudit
		s.Runtime.ReadOnlyRootFilesystem = fixityv1.Require
		s.Drift.Checks = []fixityv1.DriftCheck{fixityv1.CheckImageDigest}
	})
	unrelated := builders.Policy("unrelated")
	pod := builders.Pod("shop", "web")
	st := drift.PodState{Findings: map[string][]drift.Finding{
		"prod":  {{Check: fixityv1.CheckImageDigest, Message: "runs sha256:b, admitted sha256:a"}},
		"audit": {{Check: fixityv1.CheckImageDigest, Message: "runs sha256:b, admitted sha256:a"}},
		"gone":  nil, // deleted since the last look
	}}
	vs := []admit.Violation{admit.New(audit, lockdown.RuleReadOnlyRootFilesystem, "web", "must set readOnlyRootFilesystem")}
	policies := map[string]*fixityv1.ImmutabilityPolicy{"prod": enforce, "audit": audit, "unrelated": unrelated}

	got := byRule(Pod(pod, st, policies, vs))
	g.Expect(got).To(gomega.HaveLen(6), "prod: privileged, two checks; audit: privileged, readOnlyRootFilesystem, one check; none of unrelated or gone")
	g.Expect(got).To(gomega.HaveKeyWithValue("prod drift.ImageDigest", gomega.And(
		gomega.HaveField("Result", openreports.Result("fail")), gomega.HaveField("Message", "runs sha256:b, admitted sha256:a"))))
	g.Expect(got).To(gomega.HaveKeyWithValue("prod drift.SpecChange", gomega.HaveField("Result", openreports.Result("pass"))))
	g.Expect(got).To(gomega.HaveKeyWithValue("prod "+lockdown.RulePrivileged, gomega.HaveField("Result", openreports.Result("pass"))))
	g.Expect(got).To(gomega.HaveKeyWithValue("audit drift.ImageDigest", gomega.HaveField("Result", openreports.Result("warn"))))
	g.Expect(got).To(gomega.HaveKeyWithValue("audit "+lockdown.RuleReadOnlyRootFilesystem, gomega.And(
		gomega.HaveField("Result", openreports.Result("warn")),
		gomega.HaveField("Message", `[policy audit] container "web": must set readOnlyRootFilesystem`))))
	g.Expect(got["prod drift.ImageDigest"].Subject).To(gomega.Equal(PodRef(pod)))
}

func TestNodeHasAResultPerPolicyAndCheck(t *testing.T) {
	g := gomega.NewWithT(t)
	node := builders.Node("n1")
	p := builders.NodePolicy("fleet", func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Checks = []fixityv1.NodeCheck{fixityv1.CheckKernelVersion, fixityv1.CheckOSImage}
	})
	got := byRule(Node(node, []fixityv1.NodeDriftFinding{{Check: fixityv1.CheckKernelVersion, Recorded: "6.1.0", Observed: "6.1.9"}}, []*fixityv1.NodeImmutabilityPolicy{p}))
	g.Expect(got).To(gomega.HaveLen(2))
	g.Expect(got).To(gomega.HaveKeyWithValue("fleet drift.KernelVersion", gomega.And(
		gomega.HaveField("Result", openreports.Result("fail")),
		gomega.HaveField("Message", `KernelVersion was "6.1.0" and is now "6.1.9"`),
		gomega.HaveField("Subject.Kind", "Node"), gomega.HaveField("Subject.Name", "n1"))))
	g.Expect(got).To(gomega.HaveKeyWithValue("fleet drift.OSImage", gomega.HaveField("Result", openreports.Result("pass"))))
}

func TestAccessFindingsFailOnTheirSubject(t *testing.T) {
	g := gomega.NewWithT(t)
	f := accessreview.Finding{
		Subject: accessreview.Subject{Subject: rbacv1.Subject{Kind: rbacv1.UserKind, Name: "mallory"}, Bindings: []string{"ClusterRoleBinding proxy"}},
		Door:    "nodes/proxy",
	}
	got := Access([]accessreview.Finding{f})
	g.Expect(got).To(gomega.ConsistOf(gomega.And(
		gomega.HaveField("Policy", fixityv1.AccessReviewPolicy), gomega.HaveField("Rule", "nodes/proxy"),
		gomega.HaveField("Result", openreports.Result("fail")), gomega.HaveField("Message", f.String()),
		gomega.HaveField("Subject.Kind", rbacv1.UserKind), gomega.HaveField("Subject.Name", "mallory"),
	)))
}

func TestResultsKeepTimestampsOrderAndBound(t *testing.T) {
	g := gomega.NewWithT(t)
	t0, t1 := time.Unix(1000, 0), time.Unix(2000, 0)
	pod := builders.Pod("shop", "web")
	entry := func(rule string, r openreports.Result, msg string) Entry {
		return Entry{Policy: "prod", Rule: rule, Result: r, Subject: PodRef(pod), Message: msg}
	}
	first, sum := Results([]Entry{entry("a", "pass", ""), entry("b", "fail", "broken"), entry("c", "warn", "meh")}, nil, t0)
	g.Expect(sum).To(gomega.Equal(openreports.ReportSummary{Pass: 1, Fail: 1, Warn: 1}))
	g.Expect(first).To(gomega.HaveExactElements(
		gomega.HaveField("Rule", "b"), gomega.HaveField("Rule", "c"), gomega.HaveField("Rule", "a")), "failures first, then warnings, then passes")
	g.Expect(first[0].Source).To(gomega.Equal(fixityv1.ReportSource))
	g.Expect(first[1].Scored).To(gomega.BeFalse(), "a warning is not scored")

	// Unchanged results keep their time: the report is the same object and is not written again.
	same, _ := Results([]Entry{entry("a", "pass", ""), entry("b", "fail", "broken"), entry("c", "warn", "meh")}, first, t1)
	g.Expect(same).To(gomega.Equal(first))
	// A fixed rule gets the time it was fixed.
	fixed, sum := Results([]Entry{entry("a", "pass", ""), entry("b", "pass", ""), entry("c", "warn", "meh")}, first, t1)
	g.Expect(sum).To(gomega.Equal(openreports.ReportSummary{Pass: 2, Warn: 1}))
	g.Expect(fixed).To(gomega.ContainElement(gomega.And(gomega.HaveField("Rule", "b"), gomega.HaveField("Result", openreports.Result("pass")),
		gomega.HaveField("Timestamp.Seconds", t1.Unix()))))
	g.Expect(fixed).To(gomega.ContainElement(gomega.And(gomega.HaveField("Rule", "a"), gomega.HaveField("Timestamp.Seconds", t0.Unix()))))

	// A long message is cut short, so that every result fits in the object.
	long, _ := Results([]Entry{entry("long", "fail", strings.Repeat("é", 2000))}, nil, t0)
	g.Expect(len(long[0].Description)).To(gomega.BeNumerically("<=", maxDescription))
	g.Expect(long[0].Description).To(gomega.HaveSuffix("..."))
	g.Expect(utf8.ValidString(long[0].Description)).To(gomega.BeTrue())

	// Bounded: failures are kept, passes left out first, and the summary counts all.
	var many []Entry
	for i := range fixityv1.MaxReportResults + 10 {
		many = append(many, entry(fmt.Sprintf("pass-%04d", i), "pass", ""))
	}
	many = append(many, entry("z-broken", "fail", "broken"))
	bounded, sum := Results(many, nil, t0)
	g.Expect(bounded).To(gomega.HaveLen(fixityv1.MaxReportResults))
	g.Expect(bounded[0].Rule).To(gomega.Equal("z-broken"))
	g.Expect(sum.Pass).To(gomega.Equal(fixityv1.MaxReportResults + 10))
	g.Expect(sum.Fail).To(gomega.Equal(1))
}
