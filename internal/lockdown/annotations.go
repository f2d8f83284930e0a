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
)

// AnnotationGuard keeps the fixity.dev/* pod annotations the operator's alone: drift detection
// trusts them, so anyone else writing them could hide drift or forge a verification.
type AnnotationGuard struct {
	// Operator is the operator's own username, learned from the API server.
	Operator string
}

// MutatePod drops fixity.dev/* annotations from pods created by anyone but the operator, before
// the operator's own mutations add the real ones. It is an admit.Mutator that runs whatever the
// policies say.
func (g *AnnotationGuard) MutatePod(_ context.Context, _ []fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	if req.Admission.UserInfo.Username == g.Operator {
		return nil
	}
	maps.DeleteFunc(req.Pod.Annotations, func(k, v string) bool {
		if !strings.HasPrefix(k, fixityv1.Prefix) {
			return false
		}
		if req.Stripped == nil {
			req.Stripped = map[string]string{}
		}
		req.Stripped[k] = v
		return true
	})
	return nil
}

// Guard denies an update by anyone but the operator that adds, changes or removes a
// fixity.dev/* annotation, naming the annotations and the user.
func (g *AnnotationGuard) Guard(_ context.Context, req *admit.Request) string {
	if req.Admission.Operation != admissionv1.Update || req.OldPod == nil {
		return ""
	}
	return g.Deny(req.Admission.UserInfo.Username, req.OldPod.Annotations, req.Pod.Annotations)
}

// Deny is the denial message when user, if not the operator, changes the fixity.dev/*
// annotations between old and updated; "" when the change is allowed.
func (g *AnnotationGuard) Deny(user string, old, updated map[string]string) string {
	if user == g.Operator {
		return ""
	}
	changed := ChangedOwnedAnnotations(old, updated)
	if len(changed) == 0 {
		return ""
	}
	return fmt.Sprintf("only the Fixity operator may add, change or remove fixity.dev/* annotations; %s changed %s",
		user, strings.Join(changed, ", "))
}

// ChangedOwnedAnnotations lists, sorted, the fixity.dev/* keys added, changed or removed
// between two annotation maps.
func ChangedOwnedAnnotations(old, updated map[string]string) []string {
	var changed []string
	for _, m := range []map[string]string{old, updated} {
		for k := range m {
			if !strings.HasPrefix(k, fixityv1.Prefix) || slices.Contains(changed, k) {
				continue
			}
			ov, inOld := old[k]
			nv, inNew := updated[k]
			if inOld != inNew || ov != nv {
				changed = append(changed, k)
			}
		}
	}
	slices.Sort(changed)
	return changed
}
