package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/policy"
)

// RequesterAnnotation records who created a grant. The AccessGrant webhook sets it from the
// admission request and rejects any change to it by anyone but the operator.
const RequesterAnnotation = fixityv1.RequesterAnnotation

// Finalizer keeps a deleted grant until the operator has revoked it.
const Finalizer = fixityv1.GrantFinalizer

// DefaultDuration applies when a grant's duration is unset (the schema defaults it too).
const DefaultDuration = 5 * time.Minute

// PendingTimeout is how long a grant may wait for its approvals: one still Pending this long
// after its creation has expired.
const PendingTimeout = time.Hour

// Requester is the user who created g.
func Requester(g *fixityv1.AccessGrant) string {
	return g.Annotations[RequesterAnnotation]
}

// State is where a grant is at one moment.
type State struct {
	Phase fixityv1.GrantPhase
	// ExpiresAt is when an Active grant ends, or when a Pending one expires unapproved.
	ExpiresAt time.Time
	// Required is how many approvals the grant needs; Approvals are those counted.
	Required  int32
	Approvals []fixityv1.GrantApproval
}

// Missing is how many more approvals the grant needs.
func (s State) Missing() int32 { return max(0, s.Required-int32(len(s.Approvals))) }

// Evaluate says where g is at now, given the approvals counted for it and how many it needs. A
// grant needing approvals runs for its duration from the approval that completed them.
func Evaluate(g *fixityv1.AccessGrant, approvals []fixityv1.GrantApproval, required int32, now time.Time) State {
	d := DefaultDuration
	if g.Spec.Duration != nil {
		d = g.Spec.Duration.Duration
	}
	s := State{Required: required, Approvals: approvals}
	start := g.CreationTimestamp.Time
	switch {
	case Requester(g) == "" || !g.DeletionTimestamp.IsZero():
		s.Phase, s.ExpiresAt = fixityv1.GrantExpired, start.Add(d)
		return s
	case s.Missing() > 0:
		s.ExpiresAt = start.Add(PendingTimeout)
		s.Phase = fixityv1.GrantPending
		if !now.Before(s.ExpiresAt) {
			s.Phase = fixityv1.GrantExpired
		}
		return s
	case required > 0:
		start = approvals[required-1].At.Time
	}
	s.ExpiresAt = start.Add(d)
	s.Phase = fixityv1.GrantActive
	if !now.Before(s.ExpiresAt) {
		s.Phase = fixityv1.GrantExpired
	}
	return s
}

// RequiredApprovals is the most approvals any of policies asks for.
func RequiredApprovals(policies []fixityv1.ImmutabilityPolicy) int32 {
	var n int32
	for i := range policies {
		n = max(n, policies[i].Spec.Runtime.Approvals)
	}
	return n
}

// CountApprovals returns the approvals in list that count for g, oldest first: those naming g by
// name and UID (recorded at admission), with a recorded approver other than the requester, the
// first per approver.
func CountApprovals(g *fixityv1.AccessGrant, list []fixityv1.AccessApproval) []fixityv1.GrantApproval {
	var out []fixityv1.GrantApproval
	for i := range list {
		a := &list[i]
		if reason, _ := Counts(g, a); reason != fixityv1.CountedReason {
			continue
		}
		out = append(out, fixityv1.GrantApproval{User: Approver(a), At: a.CreationTimestamp, Approval: a.Name})
	}
	slices.SortStableFunc(out, func(x, y fixityv1.GrantApproval) int {
		if c := x.At.Compare(y.At.Time); c != 0 {
			return c
		}
		return strings.Compare(x.Approval, y.Approval)
	})
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(x fixityv1.GrantApproval) bool {
		dup := seen[x.User]
		seen[x.User] = true
		return dup
	})
}

// Approver is the user who created a, as the approval webhook recorded it.
func Approver(a *fixityv1.AccessApproval) string { return a.Annotations[fixityv1.ApproverAnnotation] }

// Counts says whether a counts for g (g may be nil: not found): the condition reason
// CountedReason, or the reason it does not and why.
func Counts(g *fixityv1.AccessGrant, a *fixityv1.AccessApproval) (reason, why string) {
	switch {
	case g == nil || a.Spec.Grant != g.Name || a.Namespace != g.Namespace || a.Annotations[fixityv1.ApprovedGrantUIDAnnotation] != string(g.UID):
		return fixityv1.GrantNotFoundReason, fmt.Sprintf("grant %s/%s it was created for no longer exists", a.Namespace, a.Spec.Grant)
	case Approver(a) == "":
		return fixityv1.NoApproverReason, "it has no recorded approver: it was not admitted by the Fixity webhook"
	case !a.DeletionTimestamp.IsZero():
		return fixityv1.NotCountedReason, "it is being deleted"
	case Approver(a) == Requester(g):
		return fixityv1.NotCountedReason, fmt.Sprintf("%s requested the grant and cannot approve it", Approver(a))
	}
	return fixityv1.CountedReason, ""
}

// Covers reports whether g names pod (by name or label selector) and allows access.
func Covers(g *fixityv1.AccessGrant, pod *corev1.Pod, access fixityv1.AccessKind) (bool, error) {
	if g.Namespace != pod.Namespace || !slices.Contains(g.Spec.Access, access) {
		return false, nil
	}
	if g.Spec.PodSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(g.Spec.PodSelector)
		if err != nil {
			return false, fmt.Errorf("grant %s/%s: spec.podSelector: %w", g.Namespace, g.Name, err)
		}
		return sel.Matches(labels.Set(pod.Labels)), nil
	}
	return slices.Contains(g.Spec.Pods, pod.Name), nil
}

// Finder looks up the grant that lets a user into a pod.
type Finder struct {
	Reader client.Reader
	// Matcher finds the policies of a grant's namespace, which say how many approvals it needs;
	// nil means none do.
	Matcher *policy.Matcher
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
}

// State returns where g is at now: its approvals, read from the AccessApprovals of its namespace
// (never from its status, which is the operator's report of them), and how many the policies of
// its namespace ask for. A grant is one object with one phase, so it needs the most approvals any
// policy of its namespace asks for, whichever of its pods that policy selects.
func (f *Finder) State(ctx context.Context, g *fixityv1.AccessGrant, now time.Time) (State, error) {
	var required int32
	if f.Matcher != nil {
		policies, err := f.Matcher.ForNamespace(ctx, g.Namespace)
		if err != nil {
			return State{}, fmt.Errorf("grant %s/%s: reading the policies that say how many approvals it needs: %w", g.Namespace, g.Name, err)
		}
		required = RequiredApprovals(policies)
	}
	var approvals []fixityv1.GrantApproval
	if required > 0 {
		var list fixityv1.AccessApprovalList
		if err := f.Reader.List(ctx, &list, client.InNamespace(g.Namespace)); err != nil {
			return State{}, fmt.Errorf("grant %s/%s: listing AccessApprovals: %w", g.Namespace, g.Name, err)
		}
		approvals = CountApprovals(g, list.Items)
	}
	return Evaluate(g, approvals, required, now), nil
}

// Now is the time by the Finder's clock.
func (f *Finder) Now() time.Time { return now(f.Clock) }

// Find returns the active grant of user that covers pod for access. Without one it returns nil
// and a sentence for the denial message explaining why: no grant, or grants that exist but
// belong to someone else, wait for approvals, have expired, or do not include this access.
func (f *Finder) Find(ctx context.Context, pod *corev1.Pod, user string, access fixityv1.AccessKind) (*fixityv1.AccessGrant, string, error) {
	var list fixityv1.AccessGrantList
	if err := f.Reader.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		return nil, "", fmt.Errorf("listing AccessGrants in %s: %w", pod.Namespace, err)
	}
	at := now(f.Clock)
	var others, waiting, otherAccess []string
	for i := range list.Items {
		g := &list.Items[i]
		ref := g.Namespace + "/" + g.Name
		covers, err := Covers(g, pod, access)
		if err != nil {
			return nil, "", err
		}
		if !covers {
			// Same pod, other access kinds: worth telling the user which grant lacks what.
			if allPods, _ := Covers(withAccess(g, access), pod, access); allPods && Requester(g) == user {
				otherAccess = append(otherAccess, ref)
			}
			continue
		}
		if Requester(g) != user {
			others = append(others, fmt.Sprintf("grant %s belongs to %s, not %s", ref, displayUser(Requester(g)), user))
			continue
		}
		st, err := f.State(ctx, g, at)
		if err != nil {
			return nil, "", err
		}
		switch {
		case st.Phase == fixityv1.GrantActive:
			return g.DeepCopy(), "", nil
		case st.Phase == fixityv1.GrantPending:
			waiting = append(waiting, fmt.Sprintf("grant %s waits for %d more approval(s) by users other than %s (an AccessApproval with spec.grant %s, or kubectl fixity approve %s)",
				ref, st.Missing(), user, g.Name, g.Name))
		case st.Missing() > 0:
			waiting = append(waiting, fmt.Sprintf("grant %s expired at %s without the %d approval(s) it needed", ref, st.ExpiresAt.UTC().Format(time.RFC3339), st.Required))
		default:
			waiting = append(waiting, fmt.Sprintf("grant %s ended at %s", ref, st.ExpiresAt.UTC().Format(time.RFC3339)))
		}
	}
	var why []string
	why = append(why, others...)
	why = append(why, waiting...)
	for _, ref := range otherAccess {
		why = append(why, fmt.Sprintf("grant %s does not include %s", ref, access))
	}
	if len(why) == 0 {
		return nil, fmt.Sprintf("no AccessGrant of %s covers pod %s for %s", user, pod.Name, access), nil
	}
	return nil, strings.Join(why, "; "), nil
}

func withAccess(g *fixityv1.AccessGrant, access fixityv1.AccessKind) *fixityv1.AccessGrant {
	c := g.DeepCopy()
	c.Spec.Access = []fixityv1.AccessKind{access}
	return c
}

func displayUser(u string) string {
	if u == "" {
		return "nobody yet"
	}
	return u
}

// Recorder records admitted accesses: the pod's taint, an entry in the grant's status.sessions
// and an Event on the grant and on the pod.
type Recorder struct {
	Client client.Client
	// Reader reads the grant from the API server in the conflict loop: re-reading a stale cached
	// copy would conflict again on every try, and the access would be denied as unauditable.
	Reader client.Reader
	Events recorder.EventRecorder
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
}

// Record appends a session to grant g and emits the Events. It retries on conflicts so that
// concurrent sessions are all kept; an error means the session may not be recorded, and the
// caller must deny the access rather than let an unrecorded one through.
func (r *Recorder) Record(ctx context.Context, g *fixityv1.AccessGrant, pod *corev1.Pod, access fixityv1.AccessKind, user string) error {
	now := now(r.Clock)
	session := fixityv1.AccessSession{Pod: pod.Name, Access: access, User: user, At: metav1.NewTime(now)}
	// Exec, attach and port-forward leave no trace in the pod, so the taint that gets it replaced
	// is written before the access is let through: ending the grant early (deleting it, removing
	// its finalizer) or editing its status cannot lose it. kubectl debug leaves its ephemeral
	// container, drift by itself; its taint, which only lets the pod be until the grant ends,
	// comes from the AccessGrant controller (patching the pod while the API server admits the
	// debug update would make it retry that update, and record the session twice).
	if access != fixityv1.AccessDebug {
		if err := Taint(ctx, r.Client, g, pod, session); err != nil {
			return err
		}
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &fixityv1.AccessGrant{}
		if err := r.Reader.Get(ctx, client.ObjectKeyFromObject(g), cur); err != nil {
			return err
		}
		before := cur.DeepCopy()
		cur.Status.Sessions = append(cur.Status.Sessions, session)
		// Bounded by the schema; keep the newest entries, the Events keep the full history.
		if n := len(cur.Status.Sessions); n > MaxSessions {
			cur.Status.Sessions = cur.Status.Sessions[n-MaxSessions:]
		}
		return r.Client.Status().Patch(ctx, cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return fmt.Errorf("recording %s session on grant %s/%s: %w", access, g.Namespace, g.Name, err)
	}
	note := fmt.Sprintf("%s by %s on pod %s under grant %s/%s (reason: %s)", access, user, pod.Name, g.Namespace, g.Name, g.Spec.Reason)
	r.Events.Eventf(g, pod, corev1.EventTypeWarning, fixityv1.EventAccessGranted, string(access), note)
	r.Events.Eventf(pod, g, corev1.EventTypeWarning, fixityv1.EventInteractiveAccess, string(access), note)
	return nil
}

// now reads c, or the real clock when c is nil.
func now(c clock.PassiveClock) time.Time {
	if c == nil {
		return time.Now()
	}
	return c.Now()
}

// MaxSessions is the most status.sessions keeps (the schema's maxItems).
const MaxSessions = 1024

// Taint marks pod, accessed in session s under g, for replacement once g has ended. A pod keeps
// the first taint it got.
func Taint(ctx context.Context, c client.Client, g *fixityv1.AccessGrant, pod *corev1.Pod, s fixityv1.AccessSession) error {
	if _, ok := pod.Annotations[fixityv1.TaintedAnnotation]; ok {
		return nil
	}
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{fixityv1.TaintedAnnotation: TaintValue(g, s)},
	}})
	if err != nil {
		return err
	}
	target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	if err := c.Patch(ctx, target, client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("tainting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// TaintValue is the fixity.dev/tainted annotation for a pod accessed in session s under g.
func TaintValue(g *fixityv1.AccessGrant, s fixityv1.AccessSession) string {
	return fmt.Sprintf("%s: %s by %s under grant %s/%s", fixityv1.CheckInteractiveAccess, strings.ToLower(string(s.Access)), s.User, g.Namespace, g.Name)
}

// TaintGrant returns the grant named in a fixity.dev/tainted value written by TaintValue.
func TaintGrant(taint string) (types.NamespacedName, bool) {
	_, ref, ok := strings.Cut(taint, " under grant ")
	if !ok {
		return types.NamespacedName{}, false
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}
