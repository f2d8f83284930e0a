package nodedrift_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/test/builders"
)

var t0 = metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))

func checks(cs ...fixityv1.NodeCheck) func(*fixityv1.NodeImmutabilityPolicySpec) {
	return func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Checks = cs }
}

func TestCompare(t *testing.T) {
	labelled := func(n *corev1.Node) {
		n.Labels["team"] = "shop"
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	}
	watch := func(s *fixityv1.NodeImmutabilityPolicySpec) {
		s.Checks = []fixityv1.NodeCheck{fixityv1.CheckLabels, fixityv1.CheckTaints}
		s.WatchedLabels = []string{"team", "zone"}
	}
	cases := []struct {
		name   string
		policy *fixityv1.NodeImmutabilityPolicy
		change func(*corev1.Node)
		want   []string // check: recorded -> observed
	}{
		{"unchanged", builders.NodePolicy("p"), func(*corev1.Node) {}, nil},
		{"kernel", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.KernelVersion = "6.1.0-29-cloud-amd64" },
			[]string{"KernelVersion: 6.1.0-28-cloud-amd64 -> 6.1.0-29-cloud-amd64"}},
		{"os image", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.OSImage = "Debian GNU/Linux 13 (trixie)" },
			[]string{"OSImage: Debian GNU/Linux 12 (bookworm) -> Debian GNU/Linux 13 (trixie)"}},
		{"kubelet", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.KubeletVersion = "v1.37.3" },
			[]string{"KubeletVersion: v1.37.2 -> v1.37.3"}},
		{"runtime", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.ContainerRuntimeVersion = "containerd://2.4.3" },
			[]string{"ContainerRuntimeVersion: containerd://2.4.2 -> containerd://2.4.3"}},
		{"another machine", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.MachineID = "other" },
			[]string{"Identity: machineID m-n -> machineID other"}},
		{"a reboot alone is not drift by default", builders.NodePolicy("p"), func(n *corev1.Node) { n.Status.NodeInfo.BootID = "b-2" }, nil},
		{"a reboot under Reboot", builders.NodePolicy("p", checks(fixityv1.CheckReboot)), func(n *corev1.Node) { n.Status.NodeInfo.BootID = "b-2" },
			[]string{"Reboot: bootID b-1 -> bootID b-2"}},
		{"a check that is off", builders.NodePolicy("p", checks(fixityv1.CheckOSImage)), func(n *corev1.Node) { n.Status.NodeInfo.KernelVersion = "x" }, nil},
		{"watched label changed, unwatched ignored", builders.NodePolicy("p", watch), func(n *corev1.Node) {
			n.Labels["team"] = "ads"
			n.Labels["cni.example/ready"] = "true"
		}, []string{"Labels: team=shop -> team=ads"}},
		{"watched label removed", builders.NodePolicy("p", watch), func(n *corev1.Node) { delete(n.Labels, "team") },
			[]string{"Labels: team=shop -> team <none>"}},
		{"watched label added", builders.NodePolicy("p", watch), func(n *corev1.Node) { n.Labels["zone"] = "a" },
			[]string{"Labels: zone <none> -> zone=a"}},
		{"recorded taint removed; a taint added is not drift", builders.NodePolicy("p", watch), func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "new", Effect: corev1.TaintEffectNoExecute}}
		}, []string{"Taints: dedicated=gpu:NoSchedule -> removed"}},
		{"expect: kubelet not allowed", builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
			s.Expect = &fixityv1.NodeExpectation{KubeletVersions: []string{"v1.37.1"}}
		}), func(*corev1.Node) {}, []string{"KubeletVersion: one of v1.37.1 (expect) -> v1.37.2"}},
		{"expect: OS image must match whole", builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
			s.Expect = &fixityv1.NodeExpectation{OSImageRegExp: "Debian"}
		}), func(*corev1.Node) {}, []string{"OSImage: matching Debian (expect) -> Debian GNU/Linux 12 (bookworm)"}},
		{"expect met", builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) {
			s.Expect = &fixityv1.NodeExpectation{KubeletVersions: []string{"v1.37.2"}, OSImageRegExp: "Debian .*"}
		}), func(*corev1.Node) {}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := builders.Node("n", labelled)
			b := nodedrift.Record(node, []fixityv1.NodeImmutabilityPolicy{*tc.policy}, t0)
			tc.change(node)
			var got []string
			for _, f := range nodedrift.Compare(b, node, tc.policy) {
				got = append(got, string(f.Check)+": "+f.Recorded+" -> "+f.Observed)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("findings\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRecordAndStale(t *testing.T) {
	node := builders.Node("n", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: fixityv1.DriftedTaint, Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Effect: corev1.TaintEffectNoSchedule}}
	})
	b := nodedrift.Record(node, []fixityv1.NodeImmutabilityPolicy{*builders.NodePolicy("p")}, t0)
	if len(b.Spec.Taints) != 1 || b.Spec.Taints[0].Key != "a" {
		t.Fatalf("Fixity's own taint must not be recorded: %+v", b.Spec.Taints)
	}
	if b.OwnerReferences[0].UID != node.UID || b.Spec.NodeUID != string(node.UID) || b.Spec.ProviderID != node.Spec.ProviderID {
		t.Fatalf("baseline not linked to its node by UID and providerID: %+v", b)
	}
	if why := nodedrift.Stale(b, node); why != "" {
		t.Fatalf("fresh baseline stale: %s", why)
	}
	again := builders.Node("n", func(n *corev1.Node) { n.UID = "another" })
	if why := nodedrift.Stale(b, again); !strings.Contains(why, "another Node") {
		t.Fatalf("a Node created again under the name: %q", why)
	}
	old := b.DeepCopy()
	old.Spec.FormatVersion = 0
	if why := nodedrift.Stale(old, node); !strings.Contains(why, "format 0") {
		t.Fatalf("an older format is recorded again, never compared: %q", why)
	}
}

func TestMergeKeepsSinceAndDedupes(t *testing.T) {
	f := fixityv1.NodeDriftFinding{Check: fixityv1.CheckKernelVersion, Recorded: "a", Observed: "b"}
	before := []fixityv1.NodeDriftFinding{{Check: f.Check, Recorded: "a", Observed: "b", Since: t0}}
	later := metav1.NewTime(t0.Add(time.Hour))
	g := fixityv1.NodeDriftFinding{Check: fixityv1.CheckOSImage, Recorded: "x", Observed: "y"}
	got := nodedrift.Merge(before, later, []fixityv1.NodeDriftFinding{f, g}, []fixityv1.NodeDriftFinding{f})
	if len(got) != 2 || !got[0].Since.Equal(&t0) || !got[1].Since.Equal(&later) {
		t.Fatalf("merged: %+v", got)
	}
	if !nodedrift.SameFindings(got, []fixityv1.NodeDriftFinding{g, f}) || nodedrift.SameFindings(got, before) {
		t.Fatal("SameFindings")
	}
}

func TestActionAndBudget(t *testing.T) {
	act := func(a fixityv1.NodeAction) func(*fixityv1.NodeImmutabilityPolicySpec) {
		return func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Action = a }
	}
	audit := builders.NodePolicy("audit", func(s *fixityv1.NodeImmutabilityPolicySpec) { s.Mode = fixityv1.ModeAudit })
	cases := []struct {
		policies []*fixityv1.NodeImmutabilityPolicy
		want     fixityv1.NodeAction
	}{
		{[]*fixityv1.NodeImmutabilityPolicy{builders.NodePolicy("a")}, fixityv1.NodeReplace},
		{[]*fixityv1.NodeImmutabilityPolicy{builders.NodePolicy("a"), builders.NodePolicy("b", act(fixityv1.NodeDrain))}, fixityv1.NodeDrain},
		{[]*fixityv1.NodeImmutabilityPolicy{builders.NodePolicy("a", act(fixityv1.NodeCordon)), builders.NodePolicy("b", act(fixityv1.NodeDrain))}, fixityv1.NodeCordon},
		{[]*fixityv1.NodeImmutabilityPolicy{builders.NodePolicy("a"), audit}, fixityv1.NodeReport},
	}
	for _, tc := range cases {
		if got := nodedrift.Action(tc.policies); got != tc.want {
			t.Errorf("Action(%v) = %s, want %s", nodedrift.Names(tc.policies), got, tc.want)
		}
	}
	pct := intstr.FromString("25%")
	for _, tc := range []struct {
		v       *intstr.IntOrString
		matched int
		want    int
	}{{nil, 10, 1}, {&pct, 10, 2}, {&pct, 3, 0}, {ptrInt(0), 10, 0}, {ptrInt(3), 2, 2}} {
		p := builders.NodePolicy("p", func(s *fixityv1.NodeImmutabilityPolicySpec) { s.MaxUnavailable = tc.v })
		if got, err := nodedrift.Budget(p, tc.matched); err != nil || got != tc.want {
			t.Errorf("Budget(%v of %d) = %d, %v; want %d", tc.v, tc.matched, got, err, tc.want)
		}
	}
	short := builders.NodePolicy("s", func(s *fixityv1.NodeImmutabilityPolicySpec) { s.DrainTimeout = &metav1.Duration{Duration: time.Minute} })
	if got := nodedrift.DrainTimeout([]*fixityv1.NodeImmutabilityPolicy{builders.NodePolicy("a"), short}); got != time.Minute {
		t.Errorf("the shortest drainTimeout wins: %s", got)
	}
}

func ptrInt(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }

func TestPlanDrain(t *testing.T) {
	rs := builders.ReplicaSet("shop", "web", 2, 2)
	ds := &metav1.ObjectMeta{Name: "agent", UID: "ds"}
	pods := []corev1.Pod{
		*builders.Pod("shop", "web-1", builders.OwnedBy(rs, "ReplicaSet")),
		*builders.Pod("shop", "web-2", builders.OwnedBy(rs, "ReplicaSet"), builders.Terminating),
		*builders.Pod("shop", "agent-x", builders.OwnedBy(ds, "DaemonSet")),
		*builders.Pod("kube-system", "etcd-n", builders.Annotated(corev1.MirrorPodAnnotationKey, "x")),
		*builders.Pod("shop", "pinned", builders.OwnedBy(rs, "ReplicaSet"), builders.Annotated(fixityv1.KarpenterDoNotDisruptAnnotation, "true")),
		*builders.Pod("shop", "bare-recreated"),
		*builders.Pod("shop", "bare-lost"),
		*builders.Pod("shop", "done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
	}
	plan := nodedrift.PlanDrain(pods, func(p *corev1.Pod) bool { return p.Name == "bare-recreated" })
	names := func(ps []*corev1.Pod) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if got := names(plan.Evict); strings.Join(got, ",") != "web-1" {
		t.Errorf("evict %v", got)
	}
	if got := names(plan.Recreate); strings.Join(got, ",") != "bare-recreated" {
		t.Errorf("recreate %v", got)
	}
	if len(plan.Blocked) != 2 || !strings.Contains(plan.Blocked[0], "do-not-disrupt") || !strings.Contains(plan.Blocked[1], "bare-lost") {
		t.Errorf("blocked %q", plan.Blocked)
	}
	if plan.Leaving != 5 {
		t.Errorf("leaving %d, want 5 (web-1, web-2 going, pinned, two bare)", plan.Leaving)
	}
}

func TestHandedOver(t *testing.T) {
	machine := func(edit func(*unstructured.Unstructured)) *nodedrift.Provisioner {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetGroupVersionKind(nodedrift.MachineKind)
		u.SetName("m")
		u.SetNamespace("capi")
		edit(u)
		return &nodedrift.Provisioner{Kind: nodedrift.MachineKind, Object: u}
	}
	if done, wait := nodedrift.HandedOver(machine(func(*unstructured.Unstructured) {})); done || wait != "" {
		t.Fatalf("a fresh Machine is to be asked: %v %q", done, wait)
	}
	if done, _ := nodedrift.HandedOver(machine(func(u *unstructured.Unstructured) {
		u.SetAnnotations(map[string]string{fixityv1.ClusterAPIRemediateMachineAnnotation: ""})
	})); !done {
		t.Fatal("an annotated Machine is handed over")
	}
	for name, edit := range map[string]func(*unstructured.Unstructured){
		"annotation": func(u *unstructured.Unstructured) {
			u.SetAnnotations(map[string]string{"in-place-updates.internal.cluster.x-k8s.io/update-in-progress": ""})
		},
		"hook": func(u *unstructured.Unstructured) {
			u.SetAnnotations(map[string]string{"runtime.cluster.x-k8s.io/pending-hooks": "UpdateMachine"})
		},
		"condition": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Updating", "status": "True"}}, "status", "conditions")
		},
	} {
		if done, wait := nodedrift.HandedOver(machine(edit)); done || !strings.Contains(wait, "updated in place") {
			t.Errorf("%s: a Machine updated in place waits: %v %q", name, done, wait)
		}
	}
}
