package lockdown

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/admitted"
)

// RuleInPlace is the rule an image changed on a running pod breaks, as counted in
// fixity_admission_violations_total.
const RuleInPlace = "images.inPlace"

// InPlace refuses an UPDATE of a pod that changes the image of a container or an image volume
// it already has (`kubectl set image pod/...`): a running pod is never changed, it is replaced
// by a new one. In Audit the violation is a warning. New ephemeral containers are not changes
// of existing ones (runtime.ephemeralContainers decides them), and the operator's own writes
// pass.
type InPlace struct {
	// Operator is the operator's own username.
	Operator string
}

// CheckPod is an admit.Check.
func (c *InPlace) CheckPod(_ context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	if req.Template || req.OldPod == nil || req.Admission.Operation != admissionv1.Update || req.Admission.UserInfo.Username == c.Operator {
		return nil
	}
	before := map[string]string{}
	for _, im := range admitted.PodImages(req.OldPod) {
		before[im.Key] = *im.Image
	}
	var out []admit.Violation
	for _, im := range admitted.PodImages(req.Pod) {
		if old, ok := before[im.Key]; ok && old != *im.Image {
			out = append(out, admit.New(p, RuleInPlace, im.Key, "image changed in place from %q to %q; a running pod is never changed: roll out a new pod instead (change its Deployment or other owner, or create a new pod)", old, *im.Image))
		}
	}
	return out
}
