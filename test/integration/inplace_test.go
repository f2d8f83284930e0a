package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A running pod is never changed in place: in Enforce, `kubectl set image pod/...` by anyone but
// the operator is refused with what to do instead, whatever the new image is; in Audit it is
// allowed with the same words as a warning.
func TestInPlaceImageChangesAreRefused(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	cfg := asAlice()
	alice, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	v1, v2 := pushImage(t, "shop/inplace", "1"), pushImage(t, "shop/inplace", "2")

	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Require\n")
	p := podWithImage(ns, "web", v1.String())
	g.Expect(alice.Create(ctx, p)).To(gomega.Succeed())
	p.Spec.Containers[0].Image = v2.String()
	err = alice.Update(ctx, p)
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(fmt.Sprintf(
		`[policy %s] container "web": image changed in place from %q to %q; a running pod is never changed: roll out a new pod instead`, pol, v1.String(), v2.String()))))

	auditNS, auditPol := imagePolicy(t, ctx, "mode: Audit\nimages:\n  digest: Require\n")
	var warnings []string
	cfg.WarningHandlerWithContext = warningFunc(func(msg string) { warnings = append(warnings, msg) })
	warned, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	p = podWithImage(auditNS, "web", v1.String())
	g.Expect(alice.Create(ctx, p)).To(gomega.Succeed())
	p.Spec.Containers[0].Image = v2.String()
	g.Expect(warned.Update(ctx, p)).To(gomega.Succeed())
	g.Expect(warnings).To(gomega.ContainElement(gomega.ContainSubstring(fmt.Sprintf(
		`[policy %s] container "web": image changed in place from %q to %q`, auditPol, v1.String(), v2.String()))))
}
