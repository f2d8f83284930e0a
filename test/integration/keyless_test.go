package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/test/registry"
)

const (
	ciIssuer  = "https://token.actions.githubusercontent.com"
	ciSubject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
)

// Keyless signatures verify offline against the trust root a policy references: the Fulcio
// chain, the identity (issuer and subject or subjectRegExp) in the certificate, and, under
// transparencyLog: Require, the Rekor bundle's signed entry timestamp.
func TestKeylessSignatures(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	fulcio, err := registry.NewFulcio()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	rekor, err := registry.NewRekor()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	otherCA, err := registry.NewFulcio()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	otherLog, err := registry.NewRekor()
	g.Expect(err).NotTo(gomega.HaveOccurred())

	rootNS := createNamespace(t, ctx, nil)
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: rootNS, Name: "sigstore-trust-root"},
		Data:       map[string]string{"fulcio.pem": string(fulcio.ChainPEM), "rekor.pub": string(rekor.PublicPEM)},
	})).To(gomega.Succeed())
	ns, pol := imagePolicy(t, ctx, fmt.Sprintf(`images:
  verify:
    authorities:
    - name: ci
      transparencyLog: Require
      keyless:
        issuer: %s
        subjectRegExp: '^https://github\.com/acme/[^/]+/\.github/workflows/release\.yml@refs/heads/main$'
        trustRootRef: {namespace: %s, name: sigstore-trust-root}
`, ciIssuer, rootNS))

	signed := pushImage(t, "shop/keyless", "good")
	g.Expect(reg.SignKeyless(ctx, signed, fulcio, ciIssuer, ciSubject, rekor)).To(gomega.Succeed())
	p := podWithImage(ns, "good", signed.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Authorities).To(gomega.Equal([]string{pol + "/ci"}))

	for _, tc := range []struct {
		name, issuer, subject string
		ca                    *registry.Fulcio
		log                   *registry.Rekor
	}{
		{"another workflow", ciIssuer, "https://github.com/acme/app/.github/workflows/debug.yml@refs/heads/main", fulcio, rekor},
		{"another issuer", "https://accounts.example.com", ciSubject, fulcio, rekor},
		{"another CA", ciIssuer, ciSubject, otherCA, rekor},
		{"no Rekor bundle", ciIssuer, ciSubject, fulcio, nil},
		{"another log", ciIssuer, ciSubject, fulcio, otherLog},
	} {
		d := pushImage(t, "shop/keyless", "bad")
		g.Expect(reg.SignKeyless(ctx, d, tc.ca, tc.issuer, tc.subject, tc.log)).To(gomega.Succeed())
		err := k8s.Create(ctx, podWithImage(ns, uniqueName("bad"), d.String()))
		g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
			fmt.Sprintf(`[policy %s] container "web": image %q is not signed by enough trusted authorities: 0 of the 1 required verified it (%s/ci: no matching signature`, pol, d.String(), pol))), tc.name)
	}
}
