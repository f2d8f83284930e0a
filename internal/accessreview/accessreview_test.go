package accessreview

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Subjects are named once with every binding naming them; the control plane's identities and the
// operator are not reviewed.
func TestSubjects(t *testing.T) {
	user := func(n string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.UserKind, Name: n} }
	sa := func(ns, n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n}
	}
	crbs := []rbacv1.ClusterRoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "admins"}, Subjects: []rbacv1.Subject{user("alice"), {Kind: rbacv1.GroupKind, Name: "system:masters"}, user("system:kube-scheduler")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "controllers"}, Subjects: []rbacv1.Subject{sa("kube-system", "replicaset-controller"), sa("fixity-system", "fixity"), sa("", "broken")}},
	}
	rbs := []rbacv1.RoleBinding{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "devs"}, Subjects: []rbacv1.Subject{user("alice"), {Kind: rbacv1.GroupKind, Name: "developers"}, sa("shop", "ci")}}}
	var got []string
	for _, s := range Subjects(crbs, rbs, "system:serviceaccount:fixity-system:fixity") {
		got = append(got, s.String()+" "+s.Bindings[len(s.Bindings)-1])
	}
	want := []string{"Group developers RoleBinding shop/devs", "ServiceAccount shop/ci RoleBinding shop/devs", "User alice RoleBinding shop/devs"}
	if !slices.Equal(got, want) {
		t.Fatalf("Subjects = %q, want %q", got, want)
	}
}

// An Event goes to the bindings that can grant the finding.
func TestGranting(t *testing.T) {
	s := Subject{Bindings: []string{"ClusterRoleBinding devs", "RoleBinding dev/exec", "RoleBinding shop/exec"}}
	for _, tc := range []struct {
		f    Finding
		want []string
	}{
		{Finding{Subject: s, Door: "nodes/proxy"}, []string{"ClusterRoleBinding devs"}},
		{Finding{Subject: s, Door: "pods/exec", Namespaces: []string{"dev"}}, []string{"ClusterRoleBinding devs", "RoleBinding dev/exec"}},
		{Finding{Subject: s, Door: "pods/exec", Namespaces: []string{"*"}}, s.Bindings},
		{Finding{Subject: Subject{Bindings: []string{"RoleBinding shop/exec"}}, Door: "nodes/proxy"}, []string{"RoleBinding shop/exec"}},
	} {
		if got := Granting(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Granting(%s %v) = %q, want %q", tc.f.Door, tc.f.Namespaces, got, tc.want)
		}
	}
}

// The store reports what a review added and whether anything changed.
func TestStore(t *testing.T) {
	var s Store
	a := Finding{Subject: Subject{Subject: rbacv1.Subject{Kind: rbacv1.UserKind, Name: "alice"}}, Door: "nodes/proxy"}
	b := Finding{Subject: Subject{Subject: rbacv1.Subject{Kind: rbacv1.UserKind, Name: "bob"}}, Door: "bind"}
	if _, ok := s.Get(); ok {
		t.Fatal("reviewed before the first review")
	}
	for i, step := range []struct {
		set     []Finding
		added   int
		changed bool
	}{
		{nil, 0, true}, {[]Finding{a}, 1, true}, {[]Finding{a}, 0, false}, {[]Finding{b}, 1, true}, {nil, 0, true},
	} {
		added, changed := s.Set(step.set)
		if len(added) != step.added || changed != step.changed {
			t.Fatalf("step %d: added %d, changed %t; want %d, %t", i, len(added), changed, step.added, step.changed)
		}
	}
}
