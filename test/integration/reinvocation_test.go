package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"gomodules.xyz/jsonpatch/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
)

const (
	// sidecarPath serves sidecarInjector next to Fixity's webhooks.
	sidecarPath   = "/test-sidecar-injector"
	injectedLabel = "mesh.example.com/injected"
)

// sidecarInjector changes pods the way a service mesh's injector does, after Fixity's mutating
// webhook (its configuration's name sorts later), so the API server invokes Fixity again.
type sidecarInjector struct{}

func (sidecarInjector) Handle(_ context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if pod.Labels == nil {
		return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels", Value: map[string]string{injectedLabel: "true"}})
	}
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/labels/" + strings.ReplaceAll(injectedLabel, "/", "~1"), Value: "true"})
}

// tagRestorerPath serves tagRestorer next to Fixity's webhooks.
const tagRestorerPath = "/test-tag-restorer"

// tagRestorer puts the image tag recorded in fixity.dev/original-image.web back into the pod
// every time it is called, after Fixity (its configuration's name sorts later) and again after
// Fixity's reinvocation: the pod reaches validation with a tag.
type tagRestorer struct{}

func (tagRestorer) Handle(_ context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	tag, ok := pod.Annotations[fixityv1.OriginalImageAnnotationPrefix+"web"]
	if !ok || pod.Spec.Containers[0].Image == tag {
		return admission.Allowed("")
	}
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "replace", Path: "/spec/containers/0/image", Value: tag})
}

// installSidecarInjector registers sidecarInjector for pods created in ns and waits until the
// API server calls it.
func installSidecarInjector(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	installMutator(t, ctx, ns, "zz-mesh-injector-", sidecarPath, admissionregistrationv1.NeverReinvocationPolicy, func(g gomega.Gomega) {
		p := pod(ns, "")
		p.Name, p.GenerateName = "", "probe-"
		g.Expect(k8s.Create(ctx, p, client.DryRunAll)).To(gomega.Succeed())
		g.Expect(p.Labels).To(gomega.HaveKey(injectedLabel))
	})
}

// installMutator registers the test webhook at path for pods created in ns, under a
// configuration named after Fixity's, and waits until called shows the API server calls it.
func installMutator(t *testing.T, ctx context.Context, ns, prefix, path string, reinvocation admissionregistrationv1.ReinvocationPolicyType, called func(gomega.Gomega)) {
	t.Helper()
	g := gomega.NewWithT(t)
	url := fmt.Sprintf("https://%s:%d%s", env.Webhook.LocalServingHost, env.Webhook.LocalServingPort, path)
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: prefix + ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "mutate.test.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.Webhook.LocalServingCAData},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(reinvocation),
		}},
	}
	g.Expect(k8s.Create(ctx, cfg)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cfg) })
	g.Eventually(called, 30*time.Second, 100*time.Millisecond).Should(gomega.Succeed())
}

// When another webhook changes a pod after Fixity rewrote its tag, Fixity is invoked again on
// the rewritten pod: the original image it recorded survives, and is still the operator's alone.
func TestOriginalImageSurvivesReinvocation(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, _ := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")
	installSidecarInjector(t, ctx, ns)
	// Pods are created by someone other than the operator (a ReplicaSet controller, a user),
	// whose fixity.dev/* annotations the operator does not take on trust.
	cfg := asAlice()
	alice, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	d := pushImage(t, "shop/mesh", "1.0")
	other := pushImage(t, "shop/mesh", "2.0")
	tagged := reg.Host() + "/shop/mesh:1.0"

	p := podWithImage(ns, "meshed", tagged)
	g.Expect(alice.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Labels).To(gomega.HaveKeyWithValue(injectedLabel, "true"))
	g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(d.String()))
	g.Expect(p.Annotations).To(gomega.HaveKeyWithValue(fixityv1.OriginalImageAnnotationPrefix+"web", tagged))
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Image).To(gomega.Equal(d.String()))

	// Written by hand, the annotation stays only if it is true; a made-up one is dropped.
	forged := podWithImage(ns, "forged", d.String())
	forged.Annotations = map[string]string{fixityv1.OriginalImageAnnotationPrefix + "web": reg.Host() + "/shop/mesh:2.0"}
	g.Expect(alice.Create(ctx, forged)).To(gomega.Succeed())
	g.Expect(forged.Annotations).NotTo(gomega.HaveKey(fixityv1.OriginalImageAnnotationPrefix + "web"))
	forged = podWithImage(ns, "forged-other", other.String())
	forged.Annotations = map[string]string{fixityv1.OriginalImageAnnotationPrefix + "web": "registry.example.com/shop/mesh:2.0"}
	g.Expect(alice.Create(ctx, forged)).To(gomega.Succeed())
	g.Expect(forged.Annotations).NotTo(gomega.HaveKey(fixityv1.OriginalImageAnnotationPrefix + "web"))
}

// A tag that another webhook puts back after Fixity pinned it (even after Fixity is invoked
// again) never runs unpinned under Resolve: the validating webhook denies it, naming the digest.
func TestTagPutBackAfterResolveIsDenied(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, policyName := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")
	d := pushImage(t, "shop/restored", "1.0")
	tagged := reg.Host() + "/shop/restored:1.0"
	installMutator(t, ctx, ns, "zz-tag-restorer-", tagRestorerPath, admissionregistrationv1.IfNeededReinvocationPolicy, func(g gomega.Gomega) {
		err := k8s.Create(ctx, podWithImage(ns, "probe", tagged), client.DryRunAll)
		g.Expect(err).To(gomega.HaveOccurred())
		g.Expect(err.Error()).To(gomega.ContainSubstring("is not pinned by digest"))
	})

	err := k8s.Create(ctx, podWithImage(ns, "restored", tagged))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(fmt.Sprintf(
		`admission webhook "pods.fixity.dev" denied the request: [policy %s] container "web": image %q is not pinned by digest; use %s (the digest that tag points at now)`,
		policyName, tagged, d.String()))))
}
