package accessreview

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Subject is a user, group or service account some bindings name.
type Subject struct {
	rbacv1.Subject
	// Bindings name the bindings that name it ("ClusterRoleBinding x", "RoleBinding ns/y"), sorted.
	Bindings []string
}

// String is the subject as a user reads it: "User alice", "ServiceAccount shop/ci".
func (s Subject) String() string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return s.Kind + " " + s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + s.Name
}

// Finding is one door past Fixity that a subject's RBAC opens.
type Finding struct {
	Subject Subject
	// Door is what it may do: "nodes/proxy", "pods/exec", "pods/attach", "escalate", "bind",
	// "webhook configurations", "node baselines".
	Door string
	// Namespaces are where it may exec or attach with no policy denying it ("*": every one).
	Namespaces []string
}

// Key identifies a finding across reviews.
func (f Finding) Key() string {
	return f.Subject.String() + "|" + f.Door + "|" + strings.Join(f.Namespaces, ",")
}

func (f Finding) String() string {
	switch f.Door {
	case "nodes/proxy":
		return f.Subject.String() + " can reach the kubelet through nodes/proxy (exec, attach, port-forward straight to its port, where no admission runs)"
	case "pods/exec", "pods/attach":
		where := "namespace(s) " + strings.Join(f.Namespaces, ", ")
		if slices.Equal(f.Namespaces, []string{"*"}) {
			where = "every namespace, the control plane's included"
		}
		return fmt.Sprintf("%s can create %s in %s, where no policy denies exec", f.Subject, f.Door, where)
	case "escalate", "bind":
		return fmt.Sprintf("%s can %s roles, and so grant itself anything", f.Subject, f.Door)
	}
	return fmt.Sprintf("%s can change the %s Fixity relies on", f.Subject, f.Door)
}

// Granting are the bindings of f's subject that can grant what f found: a RoleBinding grants
// only in its namespace, so cluster-wide doors come from ClusterRoleBindings and exec in a
// namespace from that namespace's RoleBindings or a ClusterRoleBinding. When none fits (the
// permission comes by a group the subject is in), all of them.
func Granting(f Finding) []string {
	var out []string
	for _, b := range f.Subject.Bindings {
		ref, ok := strings.CutPrefix(b, "RoleBinding ")
		if !ok {
			out = append(out, b)
			continue
		}
		ns, _, _ := strings.Cut(ref, "/")
		if f.Namespaces != nil && (slices.Contains(f.Namespaces, ns) || slices.Equal(f.Namespaces, []string{"*"})) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return f.Subject.Bindings
	}
	return out
}

// Subjects lists the subjects bindings name, with the bindings naming each. Left out: the
// control plane's own identities (system:* users and groups, service accounts of kube-system)
// and the subjects in skip (the operator itself).
func Subjects(crbs []rbacv1.ClusterRoleBinding, rbs []rbacv1.RoleBinding, skip ...string) []Subject {
	byKey := map[string]*Subject{}
	add := func(s rbacv1.Subject, binding string) {
		if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" {
			return // invalid; the API server ignores it too
		}
		name := s.Name
		if s.Kind == rbacv1.ServiceAccountKind {
			name = serviceaccount.MakeUsername(s.Namespace, s.Name)
		}
		if (s.Kind != rbacv1.ServiceAccountKind && strings.HasPrefix(s.Name, "system:")) || s.Namespace == "kube-system" && s.Kind == rbacv1.ServiceAccountKind || slices.Contains(skip, name) {
			return
		}
		key := s.Kind + "/" + s.Namespace + "/" + s.Name
		e, ok := byKey[key]
		if !ok {
			e = &Subject{Subject: rbacv1.Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}}
			byKey[key] = e
		}
		if !slices.Contains(e.Bindings, binding) {
			e.Bindings = append(e.Bindings, binding)
		}
	}
	for i := range crbs {
		for _, s := range crbs[i].Subjects {
			add(s, "ClusterRoleBinding "+crbs[i].Name)
		}
	}
	for i := range rbs {
		for _, s := range rbs[i].Subjects {
			add(s, "RoleBinding "+rbs[i].Namespace+"/"+rbs[i].Name)
		}
	}
	out := make([]Subject, 0, len(byKey))
	for _, s := range byKey {
		slices.Sort(s.Bindings)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Subject) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Reviewer asks the API server's authorizer what each subject may do.
type Reviewer struct {
	Client client.Client
}

// door is one permission that opens a door, and the attributes any of which does.
type door struct {
	name  string
	attrs []authorizationv1.ResourceAttributes
}

func verbs(group, resource, sub string, vs ...string) []authorizationv1.ResourceAttributes {
	var out []authorizationv1.ResourceAttributes
	for _, v := range vs {
		out = append(out, authorizationv1.ResourceAttributes{Verb: v, Group: group, Resource: resource, Subresource: sub})
	}
	return out
}

// clusterDoors are checked cluster-wide.
var clusterDoors = []door{
	{"nodes/proxy", verbs("", "nodes", "proxy", "get", "create")},
	{"escalate", append(verbs(rbacv1.GroupName, "clusterroles", "", "escalate"), verbs(rbacv1.GroupName, "roles", "", "escalate")...)},
	{"bind", append(verbs(rbacv1.GroupName, "clusterroles", "", "bind"), verbs(rbacv1.GroupName, "roles", "", "bind")...)},
	{"webhook configurations", append(verbs("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "update", "patch", "delete"),
		verbs("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "update", "patch", "delete")...)},
	{"node baselines", verbs("fixity.dev", "nodebaselines", "", "create", "update", "patch", "delete")},
}

// Review returns the findings for subjects; unguarded are the namespaces where no policy denies
// exec. An error means the review is incomplete: the caller keeps its last findings.
func (r *Reviewer) Review(ctx context.Context, subjects []Subject, unguarded []string) ([]Finding, error) {
	results := make([][]Finding, len(subjects))
	errs := make([]error, len(subjects))
	sem := make(chan struct{}, 4) // a few at a time: each is a round trip to the API server
	var wg sync.WaitGroup
	for i := range subjects {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = r.review(ctx, subjects[i], unguarded)
		})
	}
	wg.Wait()
	var out []Finding
	for i := range subjects {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out = append(out, results[i]...)
	}
	return out, nil
}

func (r *Reviewer) review(ctx context.Context, s Subject, unguarded []string) ([]Finding, error) {
	var out []Finding
	for _, d := range clusterDoors {
		ok, err := r.anyAllowed(ctx, s, "", d.attrs)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, Finding{Subject: s, Door: d.name})
		}
	}
	for _, sub := range []string{"exec", "attach"} {
		attrs := verbs("", "pods", sub, "create")
		everywhere, err := r.anyAllowed(ctx, s, "", attrs)
		if err != nil {
			return nil, err
		}
		f := Finding{Subject: s, Door: "pods/" + sub}
		if everywhere {
			f.Namespaces = []string{"*"}
		} else {
			for _, ns := range unguarded {
				ok, err := r.anyAllowed(ctx, s, ns, attrs)
				if err != nil {
					return nil, err
				}
				if ok {
					f.Namespaces = append(f.Namespaces, ns)
				}
			}
		}
		if len(f.Namespaces) > 0 {
			out = append(out, f)
		}
	}
	return out, nil
}

// anyAllowed reports whether s may do any of attrs in namespace ("" for cluster-wide).
func (r *Reviewer) anyAllowed(ctx context.Context, s Subject, namespace string, attrs []authorizationv1.ResourceAttributes) (bool, error) {
	for _, a := range attrs {
		a.Namespace = namespace
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &a}}
		switch s.Kind {
		case rbacv1.UserKind:
			sar.Spec.User = s.Name
		case rbacv1.GroupKind:
			sar.Spec.Groups = []string{s.Name}
		case rbacv1.ServiceAccountKind:
			sar.Spec.User = serviceaccount.MakeUsername(s.Namespace, s.Name)
			sar.Spec.Groups = serviceaccount.MakeGroupNames(s.Namespace)
		default:
			return false, nil
		}
		if err := r.Client.Create(ctx, sar); err != nil {
			return false, fmt.Errorf("asking whether %s may %s %s: %w", s, a.Verb, a.Resource, err)
		}
		if sar.Status.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// Store keeps the latest review for the policy controller, which publishes it.
type Store struct {
	mu       sync.Mutex
	findings []Finding
	reviewed bool
}

// Set records a review and returns the findings it has that the last one had not, and whether
// anything changed (a first review always does).
func (s *Store) Set(fs []Finding) (added []Finding, changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := func(l []Finding) []string {
		out := make([]string, len(l))
		for i, f := range l {
			out[i] = f.Key()
		}
		slices.Sort(out)
		return out
	}
	old := keys(s.findings)
	for _, f := range fs {
		if _, found := slices.BinarySearch(old, f.Key()); !found {
			added = append(added, f)
		}
	}
	changed = !s.reviewed || !slices.Equal(old, keys(fs))
	s.findings, s.reviewed = slices.Clone(fs), true
	return added, changed
}

// Get returns the latest findings, and false before the first review.
func (s *Store) Get() ([]Finding, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.findings), s.reviewed
}

// SubjectCount is the number of distinct subjects among fs.
func SubjectCount(fs []Finding) int {
	seen := map[string]bool{}
	for _, f := range fs {
		seen[f.Subject.String()] = true
	}
	return len(seen)
}
