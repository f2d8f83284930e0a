package podconfig

import (
	"context"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admit"
)

// RuleMutable is the rule name of config.mutable in violations and metrics.
const RuleMutable = "config.mutable"

// fixHint says how to make configuration immutable, the way kustomize and Helm users do.
const fixHint = "create a new one with immutable: true under a new name and point the pod at it " +
	"(kustomize: configMapGenerator/secretGenerator with immutable: true, which name it by a hash of its data; " +
	"Helm: put a checksum of the data in the name); see the README, \"Configuration is part of the build\""

// Rules are config.mutable: the admit.Check of Deny and the admit.Mutator of Replace.
type Rules struct {
	Store *Store
}

// MutatePod records, when a matching policy says Replace, the keyed hash of each ConfigMap and
// Secret the pod uses in fixity.dev/config, for drift (ConfigChange) to compare. An object that
// does not exist is not recorded (the kubelet reports a missing one; an optional one the pod
// does without); one that cannot be read denies the pod (Transient), since a pod admitted
// without its record could never be replaced for a change. A record the request brought is
// dropped first: only the operator's own is believed.
func (r *Rules) MutatePod(ctx context.Context, policies []fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	delete(req.Pod.Annotations, fixityv1.ConfigAnnotation)
	i := slices.IndexFunc(policies, func(p fixityv1.ImmutabilityPolicy) bool { return Mutability(&p) == fixityv1.ConfigReplace })
	if i < 0 || req.Template {
		return nil
	}
	p := &policies[i]
	rec := Record{Key: r.Store.Key.ID(), Objects: map[string]string{}}
	objs, out := r.readUsed(ctx, p, req.Pod, "record its data for drift detection")
	for _, o := range objs {
		rec.Objects[o.String()] = o.Hash
	}
	if len(out) > 0 || len(rec.Objects) == 0 {
		return out
	}
	if req.Pod.Annotations == nil {
		req.Pod.Annotations = map[string]string{}
	}
	req.Pod.Annotations[fixityv1.ConfigAnnotation] = rec.Encode()
	return nil
}

// Mutability is p's config.mutable, Replace when unset.
func Mutability(p *fixityv1.ImmutabilityPolicy) fixityv1.ConfigMutability {
	if p.Spec.Config.Mutable == "" {
		return fixityv1.ConfigReplace
	}
	return p.Spec.Config.Mutable
}

// CheckPod denies, under Deny, a pod (on CREATE) or template that uses a ConfigMap or Secret
// that exists and is not immutable, optional references included. One that does not exist is
// the kubelet's to report (or, optional, to do without).
func (r *Rules) CheckPod(ctx context.Context, p *fixityv1.ImmutabilityPolicy, req *admit.Request) []admit.Violation {
	if Mutability(p) != fixityv1.ConfigDeny || (!req.Template && req.Admission.Operation != admissionv1.Create) {
		return nil
	}
	objs, out := r.readUsed(ctx, p, req.Pod, "tell whether it is immutable")
	for _, o := range objs {
		if !o.Immutable {
			out = append(out, admit.New(p, RuleMutable, "", "%s %q (%s) is mutable, and spec.config.mutable is Deny: %s",
				o.Kind, o.Name, strings.Join(o.Uses, ", "), fixHint))
		}
	}
	return out
}

// used is a ConfigMap or Secret a pod uses, as read now.
type used struct {
	Ref
	Object
}

// readUsed reads each ConfigMap and Secret pod uses that exists; one that cannot be read is a
// Transient violation of p, saying what it was read for.
func (r *Rules) readUsed(ctx context.Context, p *fixityv1.ImmutabilityPolicy, pod *corev1.Pod, purpose string) ([]used, []admit.Violation) {
	var objs []used
	var out []admit.Violation
	for _, ref := range Used(&pod.Spec) {
		obj, found, err := r.Store.Get(ctx, pod.Namespace, ref.Kind, ref.Name)
		switch {
		case err != nil:
			v := admit.New(p, RuleMutable, "", "%s %q (%s) cannot be read to %s: %v",
				ref.Kind, ref.Name, strings.Join(ref.Uses, ", "), purpose, err)
			v.Transient = true
			out = append(out, v)
		case found:
			objs = append(objs, used{Ref: ref, Object: obj})
		}
	}
	return objs, out
}
