package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/config/crd"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/manifests"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/podconfig"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/workload"
	"github.com/fixity-dev/fixity/webhooks/pods"
	"github.com/fixity-dev/fixity/webhooks/policies"
	"github.com/fixity-dev/fixity/webhooks/workloads"
)

// offlineUser is who the offline requests come from: never the operator, so its guards hold.
const offlineUser = "kubectl-fixity"

// offline runs Fixity's admission webhooks without a cluster: their handlers, given the
// AdmissionReview requests the API server would send, over an in-memory store of the objects
// read from the files (policies, namespaces, the Secrets and ConfigMaps they reference).
//
// The store is controller-runtime's in-memory client (client/fake), used here as a read-only
// object store: the webhooks read policies, namespaces, keys and ConfigMaps through a
// client.Reader, and it serves exactly that interface, label selectors and conversion included.
// Nothing is ever written to it: every request is a dry run.
type offline struct {
	store     client.Client
	mutator   *pods.Mutator
	validator *pods.Validator
	workloads *workloads.Handler
	matcher   *policy.Matcher
}

// newOffline builds the webhooks over objs, with registry credentials from kc. With imagesOnly
// the pod webhooks run only the image rules (what `verify` asks about).
func newOffline(objs []client.Object, kc authn.Keychain, imagesOnly bool) (*offline, error) {
	store := fake.NewClientBuilder().WithScheme(operator.NewScheme()).WithObjects(objs...).Build()
	matcher := &policy.Matcher{Reader: store}
	registry := &images.Registry{}
	img := &images.Images{
		Registry:    registry,
		Verifier:    &images.Verifier{Registry: registry},
		Authorities: &images.Authorities{Reader: store},
		Keychains:   &images.Keychains{Default: kc},
	}
	// The config record's key only matters to drift detection; offline, a random one.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	chain, err := operator.NewAdmission(fixityv1.OperatorNamespace+":offline-operator", matcher, img,
		&podconfig.Store{Key: podconfig.NewKey(secret), Live: store})
	if err != nil {
		return nil, err
	}
	if imagesOnly {
		chain.Mutators, chain.Checks = []admit.Mutator{img}, []admit.Check{img}
	}
	return &offline{
		store:     store,
		mutator:   &pods.Mutator{Matcher: matcher, Mutators: chain.Mutators},
		validator: &pods.Validator{Matcher: matcher, Guards: chain.Guards, Checks: chain.Checks},
		workloads: &workloads.Handler{Matcher: matcher, Checks: chain.Checks},
		matcher:   matcher,
	}, nil
}

// verdict is what the webhooks answered for one object.
type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"`
	Allowed   bool   `json:"allowed"`
	// Policies name the policies that cover the object; none means Fixity has nothing to say
	// about it (an excluded namespace, no selector matching), which is not the same as a pass.
	Policies []string `json:"policies"`
	Denials  []string `json:"denials,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Errors are answers that decide nothing (a request the webhook could not read or judge):
	// the tool could not decide, exit 2.
	Errors []string `json:"errors,omitempty"`
	// Pod is the pod as the mutating webhook left it (pods only).
	Pod *corev1.Pod `json:"-"`
}

// admits reports whether the webhooks run for o's kind.
func admits(o manifests.Object) bool {
	gk := o.GroupVersionKind().GroupKind()
	if gk.Group == "" && gk.Kind == "Pod" {
		return true
	}
	return slices.Contains(workload.Kinds, metav1.GroupKind{Group: gk.Group, Kind: gk.Kind})
}

// admit sends o to the webhooks the API server would call for its create, in their order: for
// a Pod the mutating webhook, then (on the mutated pod) the validating one; for a workload the
// workload webhook.
func (e *offline) admit(ctx context.Context, o manifests.Object) (verdict, error) {
	raw, err := o.MarshalJSON()
	if err != nil {
		return verdict{}, fmt.Errorf("%s: %w", o, err)
	}
	gvk := o.GroupVersionKind()
	v := verdict{Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Source: o.Source, Allowed: true, Policies: []string{}}
	if names, err := e.covering(ctx, o, raw); err != nil {
		// The webhooks below still answer; the tool cannot say what covers it, so: undecided.
		v.Errors = append(v.Errors, err.Error())
	} else {
		v.Policies = names
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID("offline"),
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Namespace: o.GetNamespace(), Name: o.GetName(),
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: offlineUser},
		Object:    runtime.RawExtension{Raw: raw},
		DryRun:    ptr.To(true),
	}}
	if gvk.Group == "" && gvk.Kind == "Pod" {
		req.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
		resp := e.mutator.Handle(ctx, req)
		v.add(resp)
		if !resp.Allowed {
			return v, nil
		}
		if req.Object.Raw, err = applyPatches(raw, resp); err != nil {
			return v, fmt.Errorf("%s: applying the mutating webhook's patch: %w", o, err)
		}
		resp = e.validator.Handle(ctx, req)
		v.add(resp)
		var pod corev1.Pod
		if err := json.Unmarshal(req.Object.Raw, &pod); err == nil {
			v.Pod = &pod
		}
		return v, nil
	}
	req.Resource = metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: strings.ToLower(gvk.Kind) + "s"}
	v.add(e.workloads.Handle(ctx, req))
	return v, nil
}

// covering names the policies that apply to the pods of o (a Pod, or a workload's template).
func (e *offline) covering(ctx context.Context, o manifests.Object, raw []byte) ([]string, error) {
	gvk := o.GroupVersionKind()
	labels := o.GetLabels()
	if gvk.Group != "" || gvk.Kind != "Pod" {
		tmpl, err := workload.PodTemplate(metav1.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, raw)
		if err != nil {
			return nil, fmt.Errorf("finding the policies that cover it: %w", err)
		}
		labels = tmpl.Labels
	}
	policies, err := e.matcher.ForPod(ctx, o.GetNamespace(), labels)
	if err != nil {
		return nil, fmt.Errorf("finding the policies that cover it: %w", err)
	}
	names := make([]string, 0, len(policies))
	for _, p := range policies {
		names = append(names, p.Name)
	}
	return names, nil
}

// add records one webhook's answer: its warnings, and its denial one line per violation.
func (v *verdict) add(resp admission.Response) {
	v.Warnings = append(v.Warnings, resp.Warnings...)
	if resp.Allowed {
		return
	}
	v.Allowed = false
	msg := "denied"
	if resp.Result != nil && resp.Result.Message != "" {
		msg = resp.Result.Message
	}
	if resp.Result != nil && resp.Result.Code != 0 && resp.Result.Code != http.StatusForbidden {
		v.Errors = append(v.Errors, msg)
		return
	}
	v.Denials = append(v.Denials, strings.Split(msg, "\n")...)
}

// undecided is the error of verdicts some webhook could not decide, naming each object.
func undecided(verdicts []verdict) error {
	var lines []string
	for _, v := range verdicts {
		for _, e := range v.Errors {
			lines = append(lines, fmt.Sprintf("%s %s/%s (%s): %s", v.Kind, v.Namespace, v.Name, v.Source, e))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("could not decide:\n  %s", strings.Join(lines, "\n  "))
}

func applyPatches(raw []byte, resp admission.Response) ([]byte, error) {
	if len(resp.Patches) == 0 {
		return raw, nil
	}
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}

// loaded are the objects of the files, ready for the store.
type loaded struct {
	// Store holds the policies, namespaces, Secrets and ConfigMaps, typed.
	Store []client.Object
	// Subjects are the Pods and workloads to admit, in file order.
	Subjects []manifests.Object
	// Policies are the ImmutabilityPolicies read.
	Policies []*fixityv1.ImmutabilityPolicy
}

// load reads the policy files and the manifests. Fixity's kinds are admitted as the API server
// would (defaults, schema, CEL rules, and the policy webhook's own check), so a policy file that
// could not be applied is an error here too. Pods and workloads without a namespace are put in
// namespace; a namespace no file defines is made with only its name label, as the API server
// labels every namespace. With enforce (-n given), a Pod or workload in another namespace is an
// error, as kubectl apply refuses it: admitting it elsewhere would test the wrong policies.
func load(ctx context.Context, policyFiles, manifestFiles []string, namespace string, enforce bool, stdin io.Reader) (*loaded, error) {
	schemas, err := manifests.LoadSchemas(crd.Bases)
	if err != nil {
		return nil, err
	}
	// Stdin can be read once: a second "-" would silently read nothing.
	dashes := 0
	for _, f := range slices.Concat(policyFiles, manifestFiles) {
		if f == "-" {
			dashes++
		}
	}
	if dashes > 1 {
		return nil, fmt.Errorf("stdin (-) is given %d times: it can be read once, for --policy or for -f", dashes)
	}
	pol, err := manifests.Read(policyFiles, stdin)
	if err != nil {
		return nil, err
	}
	man, err := manifests.Read(manifestFiles, stdin)
	if err != nil {
		return nil, err
	}
	out := &loaded{}
	scheme := operator.NewScheme()
	namespaces := map[string]bool{}
	needed := map[string]bool{namespace: true}
	seen := map[string]seenObject{}
	for _, o := range append(pol, man...) {
		if admits(o) {
			switch ns := o.GetNamespace(); {
			case ns == "":
				o.SetNamespace(namespace)
			case enforce && ns != namespace:
				return nil, fmt.Errorf("%s: its namespace %q does not match the namespace %q given with -n; pass --namespace=%s or remove metadata.namespace", o, ns, namespace, ns)
			}
			needed[o.GetNamespace()] = true
			out.Subjects = append(out.Subjects, o)
			continue
		}
		if err := schemas.Admit(ctx, o); err != nil {
			return nil, err
		}
		typed, err := scheme.New(o.GroupVersionKind())
		switch {
		case err != nil && o.GroupVersionKind().Group == fixityv1.GroupVersion.Group:
			// Skipping it could leave a policy unevaluated: a silent allow.
			return nil, fmt.Errorf("%s: this kubectl-fixity does not know %s %s (it knows %s)", o, o.GetAPIVersion(), o.GetKind(), fixityv1.GroupVersion)
		case err != nil:
			// A kind the webhooks never read (a Service, an Ingress) plays no part.
			continue
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, typed); err != nil {
			return nil, fmt.Errorf("%s: %w", o, err)
		}
		obj, ok := typed.(client.Object)
		if !ok {
			continue
		}
		if obj.GetNamespace() == "" && namespaced(o.Unstructured) {
			obj.SetNamespace(namespace)
		}
		// The same object in both sets of files (kustomize output often repeats the Namespace)
		// is read once; two different versions of it are an error, never a silent choice.
		key := fmt.Sprintf("%s %s/%s", o.GroupVersionKind().GroupKind(), obj.GetNamespace(), obj.GetName())
		if prev, dup := seen[key]; dup {
			if equality.Semantic.DeepEqual(prev.obj, obj) {
				continue
			}
			return nil, fmt.Errorf("%s is defined twice, differently: in %s and in %s", key, prev.source, o.Source)
		}
		seen[key] = seenObject{obj: obj.DeepCopyObject(), source: o.Source}
		switch t := obj.(type) {
		case *fixityv1.ImmutabilityPolicy:
			if err := checkPolicy(ctx, o); err != nil {
				return nil, err
			}
			out.Policies = append(out.Policies, t)
		case *corev1.Secret:
			// As the API server does on create: stringData is written over data.
			for k, v := range t.StringData {
				if t.Data == nil {
					t.Data = map[string][]byte{}
				}
				t.Data[k] = []byte(v)
			}
			t.StringData = nil
		case *corev1.Namespace:
			namespaces[t.Name] = true
			if t.Labels == nil {
				t.Labels = map[string]string{}
			}
			t.Labels[corev1.LabelMetadataName] = t.Name
		}
		out.Store = append(out.Store, obj)
	}
	for ns := range needed {
		if !namespaces[ns] {
			out.Store = append(out.Store, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{corev1.LabelMetadataName: ns}}})
		}
	}
	if len(out.Policies) == 0 {
		return nil, fmt.Errorf("no ImmutabilityPolicy in %s", strings.Join(policyFiles, ", "))
	}
	return out, nil
}

// seenObject is an object read, and where.
type seenObject struct {
	obj    runtime.Object
	source string
}

// namespaced reports whether o is of a namespaced built-in kind the webhooks read.
func namespaced(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "Secret", "ConfigMap", "ServiceAccount", "AccessGrant", "AccessApproval":
		return true
	}
	return false
}

// checkPolicy runs the policy webhook (attestation conditions compile) on o.
func checkPolicy(ctx context.Context, o manifests.Object) error {
	raw, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	resp := (&policies.Handler{}).Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
	}})
	if resp.Allowed {
		return nil
	}
	msg := http.StatusText(int(resp.Result.Code))
	if resp.Result.Message != "" {
		msg = resp.Result.Message
	}
	return fmt.Errorf("%s is invalid: %s", o, msg)
}
