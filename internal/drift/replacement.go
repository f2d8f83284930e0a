package drift

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Replacement is the pod that would take pod's place once it is evicted: what its owner creates,
// or, for a bare pod and for a controller Fixity does not know (owner nil or without a
// template), the pod as it was admitted.
func Replacement(pod *corev1.Pod, owner *remediation.Owner) (*corev1.Pod, error) {
	if owner != nil && owner.Template != nil {
		tpl := owner.Template
		repl := &corev1.Pod{ObjectMeta: *tpl.ObjectMeta.DeepCopy(), Spec: *tpl.Spec.DeepCopy()}
		repl.Namespace = pod.Namespace
		return repl, nil
	}
	return AdmittedSpec(pod)
}

// DryRun runs admission's checks on a pod that would be created, as the webhook would judge it
// now. It returns the Enforce denials, or why that cannot be decided yet (a registry that cannot
// be reached).
func DryRun(ctx context.Context, m *policy.Matcher, checks []admit.Check, pod *corev1.Pod) (denied []string, undecided string) {
	policies, err := m.ForPod(ctx, pod.Namespace, pod.Labels)
	if err != nil {
		return nil, err.Error()
	}
	var transient []string
	for _, v := range admit.RunChecks(ctx, checks, policies, &admit.Request{Pod: pod, Template: true}) {
		switch {
		case v.Mode == fixityv1.ModeAudit:
		case v.Transient:
			transient = append(transient, v.String())
		default:
			denied = append(denied, v.String())
		}
	}
	return denied, strings.Join(transient, "; ")
}

// FixFor says what the owner's team should do about a replacement that would be denied.
func FixFor(o *remediation.Owner) string {
	if o == nil {
		return "Recreate the pod from a spec that passes (for a signature: sign the image or use a signed one)."
	}
	return "Fix the pod template of " + o.String() + " and roll it out (for a signature: sign the image or roll out a signed one); its drifted pods are replaced once that passes."
}
