package admit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/metrics"
)

// Violation is one rule of one policy that an object breaks.
type Violation struct {
	// Policy is the name of the policy whose rule is broken.
	Policy string
	// Mode is the policy's mode: Enforce violations deny, Audit ones warn.
	Mode fixityv1.PolicyMode
	// Rule names the rule for metrics, e.g. "images.digest" or "runtime.privileged".
	Rule string
	// Container is the container concerned (admitted.VolumeKey for an image volume); empty for
	// pod-level rules.
	Container string
	// Message says what is wrong and how to fix it.
	Message string
	// Transient marks a rule that could not be evaluated (a registry that cannot be reached):
	// admission still denies, but drift detection does not take it for drift.
	Transient bool
}

// String is the line the user reads: [policy NAME] container "C": MESSAGE.
func (v Violation) String() string {
	if volume, ok := admitted.VolumeName(v.Container); ok {
		return fmt.Sprintf("[policy %s] volume %q: %s", v.Policy, volume, v.Message)
	}
	if v.Container != "" {
		return fmt.Sprintf("[policy %s] container %q: %s", v.Policy, v.Container, v.Message)
	}
	return fmt.Sprintf("[policy %s] %s", v.Policy, v.Message)
}

// New returns a violation of rule in p.
func New(p *fixityv1.ImmutabilityPolicy, rule, container, format string, args ...any) Violation {
	return Violation{Policy: p.Name, Mode: p.Spec.Mode, Rule: rule, Container: container, Message: fmt.Sprintf(format, args...)}
}

// Check evaluates one admission concern of one policy against a pod. Workload templates are
// checked as pods, so the same rules give the same messages at `kubectl apply` of a Deployment.
// Implementations must not panic on any input and must report failures (a registry that cannot
// be reached, a key that does not parse) as violations, never as a silent pass.
type Check interface {
	CheckPod(ctx context.Context, p *fixityv1.ImmutabilityPolicy, req *Request) []Violation
}

// Request is what a Check sees: the pod (or the pod built from a workload template) and the
// admission request it came in.
type Request struct {
	// Pod is the pod being admitted, after any earlier mutation. The pod webhooks do not decode
	// its status or managedFields (no check reads them).
	Pod *corev1.Pod
	// OldPod is the pod before an UPDATE; nil on CREATE and for templates.
	OldPod *corev1.Pod
	// Admission is the raw request (user, operation, subresource).
	Admission admission.Request
	// Template is true when Pod was built from a workload's pod template.
	Template bool
	// Stripped are the fixity.dev/* annotations the creator's pod carried, which the annotation
	// guard removed. On a reinvocation (another webhook changed the pod after Fixity's first
	// pass) they include the operator's own; a mutator may restore one it can prove true.
	Stripped map[string]string
}

// Response denies when any violation comes from a policy in Enforce mode, listing one line per
// Enforce violation; Audit violations come back as warnings either way, so kubectl prints them.
func Response(vs []Violation) admission.Response {
	var deny, warn []string
	for _, v := range vs {
		if v.Mode == fixityv1.ModeAudit {
			warn = append(warn, "audit: "+v.String())
			continue
		}
		deny = append(deny, v.String())
	}
	var resp admission.Response
	if len(deny) > 0 {
		resp = admission.Denied(strings.Join(deny, "\n"))
	} else {
		resp = admission.Allowed("")
	}
	return resp.WithWarnings(warn...)
}

// Count adds vs, found by one admission decision of webhook, to the violations metric. Only
// real decisions count: not dry runs (kubectl apply --dry-run=server, `kubectl fixity`), not a
// reinvocation of the same webhook for the same object, and not the Audit warnings on an object
// a controller made from a template (the pods of a Deployment, its ReplicaSets): they were
// counted once, on the object whose template it is. Enforce denials always count: each is
// something that did not run.
func Count(webhook string, req admission.Request, reinvoked bool, vs []Violation) {
	// Nothing to count is the common case: the object is not parsed again for it.
	if len(vs) == 0 || ptr.Deref(req.DryRun, false) || reinvoked {
		return
	}
	derived := hasController(req.Object.Raw)
	for _, v := range vs {
		if derived && v.Mode == fixityv1.ModeAudit {
			continue
		}
		metrics.AdmissionViolations.WithLabelValues(webhook, v.Policy, v.Rule, string(v.Mode)).Inc()
	}
}

// hasController reports whether the object in raw names a controller among its owners.
func hasController(raw []byte) bool {
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return false
	}
	return metav1.GetControllerOfNoCopy(&obj.Metadata) != nil
}

// Denies reports whether any of vs comes from a policy in Enforce mode.
func Denies(vs []Violation) bool {
	for _, v := range vs {
		if v.Mode != fixityv1.ModeAudit {
			return true
		}
	}
	return false
}

// RunChecks runs every check of every policy against req and returns all violations, in policy
// order, so that a developer sees everything to fix at once rather than one error per attempt.
func RunChecks(ctx context.Context, checks []Check, policies []fixityv1.ImmutabilityPolicy, req *Request) []Violation {
	var out []Violation
	for i := range policies {
		for _, c := range checks {
			out = append(out, c.CheckPod(ctx, &policies[i], req)...)
		}
	}
	return out
}

// Mutator changes a pod being created (Resolve rewrites tags to digests) by the rules of the
// matching policies, editing req.Pod in place. Problems it cannot resolve come back as
// violations, which deny or warn like any other.
//
// A mutator changes only the pod's annotations and the image references admitted.PodImages
// lists (never adding or removing one): the webhook's patch is built from those alone.
type Mutator interface {
	MutatePod(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, req *Request) []Violation
}

// Guard protects an invariant that holds whatever the policies say (only the operator writes
// fixity.dev/* annotations). A non-empty result is the denial message.
type Guard interface {
	Guard(ctx context.Context, req *Request) string
}

// RunGuards returns the denial message of the first guard that refuses req, or "".
func RunGuards(ctx context.Context, guards []Guard, req *Request) string {
	for _, g := range guards {
		if msg := g.Guard(ctx, req); msg != "" {
			return msg
		}
	}
	return ""
}

// Budget is how long one admission may spend, registry calls included. The webhooks are
// registered with timeoutSeconds=10; answering inside that with a denial that names the slow
// registry beats the API server's opaque "context deadline exceeded".
const Budget = 8 * time.Second

// WithBudget bounds ctx by Budget.
func WithBudget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, Budget)
}
