package lockdown

import (
	"context"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
)

// PodSecurity is the admit.Check for spec.runtime.privileged and readOnlyRootFilesystem.
type PodSecurity struct {
	evaluator psapolicy.Evaluator
}

// NewPodSecurity builds the check with the Pod Security Admission library's default checks.
func NewPodSecurity() (*PodSecurity, error) {
	e, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the Pod Security evaluator: %w", err)
	}
	return &PodSecurity{evaluator: e}, nil
}

// The rules PodSecurity checks, as violations and reports name them.
const (
	RulePrivileged             = "runtime.privileged"
	RuleReadOnlyRootFilesystem = "runtime.readOnlyRootFilesystem"
)

var baseline = psapi.LevelVersion{Level: psapi.LevelBaseline, Version: psapi.LatestVersion()}

// CheckPod evaluates what the request adds: the whole pod on CREATE and for templates, only the
// new ephemeral containers on `kubectl debug`. Other pod updates cannot change these fields.
func (c *PodSecurity) CheckPod(_ context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	spec, ok := judged(req)
	if !ok {
		return nil
	}
	var out []admit.Violation
	if p.Spec.Runtime.Privileged != fixityv1.Allow {
		for _, r := range c.evaluator.EvaluatePod(baseline, &req.Pod.ObjectMeta, spec) {
			if !r.Allowed {
				out = append(out, admit.New(p, RulePrivileged, "",
					"%s: %s (spec.runtime.privileged is Deny; this is what stops `kubectl debug node/...` and `kubectl run --privileged`)",
					r.ForbiddenReason, r.ForbiddenDetail))
			}
		}
		forEachContainer(spec, func(kind, name string, sc *corev1.SecurityContext) {
			if sc != nil && sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
				out = append(out, admit.New(p, RulePrivileged, name,
					"%s sets securityContext.allowPrivilegeEscalation=true; remove it or set it to false", kind))
			}
		})
	}
	if p.Spec.Runtime.ReadOnlyRootFilesystem == fixityv1.Require {
		forEachContainer(spec, func(kind, name string, sc *corev1.SecurityContext) {
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				out = append(out, admit.New(p, RuleReadOnlyRootFilesystem, name,
					"%s must set securityContext.readOnlyRootFilesystem=true (spec.runtime.readOnlyRootFilesystem is Require); mount an emptyDir where it needs to write", kind))
			}
		})
	}
	return out
}

// judged returns the part of the pod spec this request is responsible for.
func judged(req *admit.Request) (*corev1.PodSpec, bool) {
	switch {
	case req.Template || req.Admission.Operation == admissionv1.Create:
		return &req.Pod.Spec, true
	case req.Admission.SubResource == "ephemeralcontainers":
		added := AddedEphemeralContainers(req)
		if len(added) == 0 {
			return nil, false
		}
		// Pod-level fields did not change in this request; judge only the new containers.
		return &corev1.PodSpec{EphemeralContainers: added}, true
	}
	return nil, false
}

// AddedEphemeralContainers returns the ephemeral containers the request adds to the pod.
func AddedEphemeralContainers(req *admit.Request) []corev1.EphemeralContainer {
	var old []string
	if req.OldPod != nil {
		for _, c := range req.OldPod.Spec.EphemeralContainers {
			old = append(old, c.Name)
		}
	}
	var added []corev1.EphemeralContainer
	for _, c := range req.Pod.Spec.EphemeralContainers {
		if !slices.Contains(old, c.Name) {
			added = append(added, c)
		}
	}
	return added
}

func forEachContainer(spec *corev1.PodSpec, f func(kind, name string, sc *corev1.SecurityContext)) {
	for _, c := range spec.InitContainers {
		f("init container", c.Name, c.SecurityContext)
	}
	for _, c := range spec.Containers {
		f("container", c.Name, c.SecurityContext)
	}
	for _, c := range spec.EphemeralContainers {
		f("ephemeral container", c.Name, c.SecurityContext)
	}
}
