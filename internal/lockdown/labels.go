package lockdown

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/policy"
)

// LabelGuard keeps a running pod inside the Enforce policies that match it. Access and drift
// are judged by the pod's current labels, so relabelling a pod out of a policy's podSelector
// would let exec in without a grant and its drift go unseen; a pod that should be governed
// differently is replaced from its workload's template instead.
type LabelGuard struct {
	Matcher *policy.Matcher
	// Operator is the operator's own username, learned from the API server.
	Operator string
}

// Guard denies an update by anyone but the operator whose new labels leave an Enforce policy
// that matched the pod before, naming the policies.
func (g *LabelGuard) Guard(ctx context.Context, req *admit.Request) string {
	if req.Admission.Operation != admissionv1.Update || req.OldPod == nil || req.Admission.UserInfo.Username == g.Operator ||
		maps.Equal(req.OldPod.Labels, req.Pod.Labels) {
		return ""
	}
	before, err := g.Matcher.ForPod(ctx, req.Pod.Namespace, req.OldPod.Labels)
	if err != nil {
		return fmt.Sprintf("the pod's new labels cannot be checked against the policies that match it: %v", err)
	}
	after, err := g.Matcher.ForPod(ctx, req.Pod.Namespace, req.Pod.Labels)
	if err != nil {
		return fmt.Sprintf("the pod's new labels cannot be checked against the policies that match it: %v", err)
	}
	var left []string
	for i := range before {
		p := &before[i]
		if p.Spec.Mode == fixityv1.ModeAudit {
			continue
		}
		if !slices.ContainsFunc(after, func(q fixityv1.ImmutabilityPolicy) bool { return q.Name == p.Name }) {
			left = append(left, p.Name)
		}
	}
	if len(left) == 0 {
		return ""
	}
	return fmt.Sprintf("[policy %s] %s may not change the labels of pod %s so that the policy no longer matches it (match.podSelector): change the labels in the workload's pod template, so that fresh pods replace this one",
		strings.Join(left, ", "), req.Admission.UserInfo.Username, req.Pod.Name)
}
