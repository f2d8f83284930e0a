package lockdown

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/grants"
)

// Access decides interactive access to a pod (exec, attach, port-forward, kubectl debug) across
// all the policies that match it.
type Access struct {
	Finder   *grants.Finder
	Recorder *grants.Recorder
}

// rule returns the policy rule governing access and its name in messages.
func rule(p *fixityv1.ImmutabilityPolicy, access fixityv1.AccessKind) (fixityv1.AllowDeny, string) {
	switch access {
	case fixityv1.AccessExec, fixityv1.AccessAttach:
		return p.Spec.Runtime.Exec, "runtime.exec"
	case fixityv1.AccessPortForward:
		return p.Spec.Runtime.PortForward, "runtime.portForward"
	default:
		return p.Spec.Runtime.EphemeralContainers, "runtime.ephemeralContainers"
	}
}

// Decide returns the violations of user's access to pod. Access that a policy denies is let
// through only by an active AccessGrant of user covering the pod; that use is recorded (unless
// dryRun), and if it cannot be recorded the access is denied: nothing unaudited gets in.
func (a *Access) Decide(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, pod *corev1.Pod, user string, access fixityv1.AccessKind, dryRun bool) []admit.Violation {
	var denying []*fixityv1.ImmutabilityPolicy
	for i := range policies {
		if r, _ := rule(&policies[i], access); r != fixityv1.Allow {
			denying = append(denying, &policies[i])
		}
	}
	if len(denying) == 0 {
		return nil
	}
	violate := func(format string, args ...any) []admit.Violation {
		out := make([]admit.Violation, 0, len(denying))
		for _, p := range denying {
			_, name := rule(p, access)
			out = append(out, admit.New(p, name, "", "%s into pod %s is denied (%s: Deny): %s",
				verb(access), pod.Name, name, fmt.Sprintf(format, args...)))
		}
		return out
	}

	grant, why, err := a.Finder.Find(ctx, pod, user, access)
	switch {
	case err != nil:
		return violate("checking AccessGrants failed: %v", err)
	case grant == nil:
		return violate("%s; for break-glass access create an AccessGrant in namespace %s with access [%s], pods [%s] and a reason: it lets only you in, for minutes, and the pod is replaced afterwards",
			why, pod.Namespace, access, pod.Name)
	}
	if dryRun {
		return nil
	}
	if err := a.Recorder.Record(ctx, grant, pod, access, user); err != nil {
		return violate("the access could not be audited, so it is refused: %v", err)
	}
	return nil
}

func verb(access fixityv1.AccessKind) string {
	switch access {
	case fixityv1.AccessExec:
		return "exec"
	case fixityv1.AccessAttach:
		return "attach"
	case fixityv1.AccessPortForward:
		return "port-forward"
	}
	return "debug (ephemeral container)"
}

// DryRun reports whether the admission request is a dry run.
func DryRun(req *admit.Request) bool {
	return ptr.Deref(req.Admission.DryRun, false)
}
