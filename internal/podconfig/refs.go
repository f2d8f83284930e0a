package podconfig

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Kinds of object a pod uses.
const (
	KindConfigMap = "ConfigMap"
	KindSecret    = "Secret"
)

// RootCA is the ConfigMap the control plane publishes in every namespace and the API server
// adds to every service account token volume. Its changes are CA rotations the pods are meant
// to pick up live: it is not the workload's configuration.
const RootCA = "kube-root-ca.crt"

// Ref is one ConfigMap or Secret a pod uses, in the pod's namespace.
type Ref struct {
	Kind string
	Name string
	// Optional is true when every use of it is optional: the pod starts without it.
	Optional bool
	// Uses says where the pod uses it, for messages: `volume "cfg"`, `container "app" envFrom`.
	Uses []string
}

// String is Kind/name.
func (r Ref) String() string { return r.Kind + "/" + r.Name }

// Used returns the ConfigMaps and Secrets spec uses, sorted by kind and name, each once:
// volumes, projected volume sources, and every container's (init and ephemeral too) envFrom
// and env valueFrom. Image pull secrets are credentials, not configuration, and are left out,
// as is the control plane's kube-root-ca.crt.
func Used(spec *corev1.PodSpec) []Ref {
	byKey := map[string]*Ref{}
	add := func(kind, name string, optional *bool, use string) {
		if name == "" || (kind == KindConfigMap && name == RootCA) {
			return
		}
		opt := optional != nil && *optional
		key := kind + "/" + name
		r, ok := byKey[key]
		if !ok {
			r = &Ref{Kind: kind, Name: name, Optional: opt}
			byKey[key] = r
		}
		r.Optional = r.Optional && opt
		if !slices.Contains(r.Uses, use) {
			r.Uses = append(r.Uses, use)
		}
	}
	for _, v := range spec.Volumes {
		use := `volume "` + v.Name + `"`
		if cm := v.ConfigMap; cm != nil {
			add(KindConfigMap, cm.Name, cm.Optional, use)
		}
		if s := v.Secret; s != nil {
			add(KindSecret, s.SecretName, s.Optional, use)
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if cm := src.ConfigMap; cm != nil {
					add(KindConfigMap, cm.Name, cm.Optional, use)
				}
				if s := src.Secret; s != nil {
					add(KindSecret, s.Name, s.Optional, use)
				}
			}
		}
	}
	containers := func(kind, name string, envFrom []corev1.EnvFromSource, env []corev1.EnvVar) {
		use := kind + ` "` + name + `"`
		for _, e := range envFrom {
			if r := e.ConfigMapRef; r != nil {
				add(KindConfigMap, r.Name, r.Optional, use+" envFrom")
			}
			if r := e.SecretRef; r != nil {
				add(KindSecret, r.Name, r.Optional, use+" envFrom")
			}
		}
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(KindConfigMap, r.Name, r.Optional, use+" env "+e.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(KindSecret, r.Name, r.Optional, use+" env "+e.Name)
			}
		}
	}
	for _, c := range spec.InitContainers {
		containers("init container", c.Name, c.EnvFrom, c.Env)
	}
	for _, c := range spec.Containers {
		containers("container", c.Name, c.EnvFrom, c.Env)
	}
	for _, c := range spec.EphemeralContainers {
		containers("ephemeral container", c.Name, c.EnvFrom, c.Env)
	}
	out := make([]Ref, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Ref) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return out
}
