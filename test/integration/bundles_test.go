package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/test/registry"
)

const slsaProvenance = "https://slsa.dev/provenance/v1"

// deniedFor is the start of the denial of image d by policy pol for the only container.
func deniedFor(pol string, d name.Digest, verified int) string {
	return fmt.Sprintf(`[policy %s] container "web": image %q is not signed by enough trusted authorities: %d of the 1 required verified it (%s/`, pol, d.String(), verified, pol)
}

// cosign v3 signs with a sigstore bundle stored as an OCI referrer by default; on a registry
// without the referrers API, in the referrers fallback tag. Both are read, next to the legacy
// .sig tag, and the record says which format verified.
func TestBundleSignaturesWithAndWithoutReferrersAPI(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	noReferrers, err := registry.StartWithoutReferrers()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(func() { _ = noReferrers.Close() })
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, verifiedBy(release))

	for _, r := range []struct {
		name string
		reg  *registry.Registry
	}{{"referrers API", reg}, {"referrers tag", noReferrers}} {
		d, err := r.reg.PushRandomImage(ctx, "shop/bundle", "1.0")
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(r.reg.SignBundle(ctx, d, release)).To(gomega.Succeed())
		p := podWithImage(ns, uniqueName("bundle"), d.String())
		g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed(), r.name)
		rec, _, err := admitted.ReadVerified(p)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(rec["web"].Formats).To(gomega.Equal(map[string]string{pol + "/release": images.FormatBundle}), r.name)

		// An attestation signed by the same key is not a signature of the image.
		att, err := r.reg.PushRandomImage(ctx, "shop/bundle", "attested")
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(r.reg.Attest(ctx, att, release, slsaProvenance, []byte(`{"buildDefinition":{}}`))).To(gomega.Succeed())
		err = k8s.Create(ctx, podWithImage(ns, uniqueName("attested"), att.String()))
		g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(deniedFor(pol, att, 0)+"release: no signatures found (1 attestation(s), which are not signatures of the image)")), r.name)
	}

	// A referrer listed in the referrers tag whose manifest is gone is named; the image's other
	// signatures still count.
	for _, legacy := range []bool{false, true} {
		d, err := noReferrers.PushRandomImage(ctx, "shop/bundle", "gone")
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(noReferrers.SignBundle(ctx, d, release)).To(gomega.Succeed())
		if legacy {
			g.Expect(noReferrers.Sign(ctx, d, release)).To(gomega.Succeed())
		}
		idx, err := remote.Referrers(d)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		refs, err := idx.IndexManifest()
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(refs.Manifests).To(gomega.HaveLen(1))
		g.Expect(remote.Delete(d.Context().Digest(refs.Manifests[0].Digest.String()))).To(gomega.Succeed())
		err = k8s.Create(ctx, podWithImage(ns, uniqueName("gone"), d.String()))
		if legacy {
			g.Expect(err).NotTo(gomega.HaveOccurred())
			continue
		}
		g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(deniedFor(pol, d, 0) + "release: no matching signature (referrer " +
			refs.Manifests[0].Digest.String()[:19] + " cannot be used: it is listed among the referrers but not in the registry)")))
	}

	// A bundle made for another image does not verify this one.
	other := newKey(t)
	d := pushImage(t, "shop/bundle", "copied")
	g.Expect(reg.SignBundle(ctx, d, other)).To(gomega.Succeed())
	err = k8s.Create(ctx, podWithImage(ns, uniqueName("other"), d.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(deniedFor(pol, d, 0) + "release: no matching signature (bundle sha256:")))
}

// The threshold counts distinct authorities, whichever format each verified with.
func TestThresholdAcrossFormats(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release, audit := newKey(t), newKey(t)
	ns, pol := imagePolicy(t, ctx, "images:\n  verify:\n    threshold: 2\n    authorities:\n"+
		indentBy(keyAuthorityPEM("release", release), 4)+"\n"+indentBy(keyAuthorityPEM("audit", audit), 4))
	d := pushImage(t, "shop/both", "1.0", release) // legacy
	g.Expect(reg.SignBundle(ctx, d, audit)).To(gomega.Succeed())
	p := podWithImage(ns, "both", d.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Formats).To(gomega.Equal(map[string]string{pol + "/release": images.FormatLegacy, pol + "/audit": images.FormatBundle}))

	one := pushImage(t, "shop/both", "one")
	g.Expect(reg.SignBundle(ctx, one, audit)).To(gomega.Succeed())
	err = k8s.Create(ctx, podWithImage(ns, "one", one.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`is not signed by enough trusted authorities: 1 of the 2 required verified it`)))
}

// keylessSubject is the identity the keyless tests' certificates name.
const keylessSubject = "release@acme.example"

// keylessBundlePolicy is a test sigstore, its trusted_root.json in a ConfigMap, and a policy
// with one keyless authority "ci" (issuer ciIssuer, subject keylessSubject) under that transparencyLog rule.
func keylessBundlePolicy(t *testing.T, ctx context.Context, tlog fixityv1.TransparencyLogRule) (ss *registry.Sigstore, ns, pol string) {
	t.Helper()
	g := gomega.NewWithT(t)
	ss, err := registry.NewSigstore()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	trusted, err := ss.TrustedRootJSON()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	rootNS := createNamespace(t, ctx, nil)
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: rootNS, Name: "sigstore-trust-root"},
		Data:       map[string]string{images.TrustRootJSON: string(trusted)},
	})).To(gomega.Succeed())
	ns, pol = imagePolicy(t, ctx, fmt.Sprintf(`images:
  verify:
    authorities:
    - name: ci
      transparencyLog: %s
      keyless:
        issuer: %s
        subject: %s
        trustRootRef: {namespace: %s, name: sigstore-trust-root}
`, tlog, ciIssuer, keylessSubject, rootNS))
	return ss, ns, pol
}

// Keyless bundles verify offline against a trusted_root.json: the Fulcio chain, the identity,
// the Rekor entry, and the certificate's validity at the log's time, so an image stays
// verifiable after its short-lived certificate expires.
func TestKeylessBundlesWithTrustedRootJSON(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ss, ns, pol := keylessBundlePolicy(t, ctx, fixityv1.TransparencyLogRequire)

	good := pushImage(t, "shop/keyless-bundle", "good")
	g.Expect(reg.SignKeylessBundle(ctx, good, ss, registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject})).To(gomega.Succeed())
	p := podWithImage(ns, "good", good.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Formats).To(gomega.Equal(map[string]string{pol + "/ci": images.FormatBundle}))

	// Signed two hours ago with a 10-minute certificate, logged while it was valid.
	issued := time.Now().Add(-2 * time.Hour)
	old := pushImage(t, "shop/keyless-bundle", "old")
	g.Expect(reg.SignKeylessBundle(ctx, old, ss, registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, IssuedAt: issued, LoggedAt: issued.Add(5 * time.Minute)})).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, podWithImage(ns, "old", old.String()))).To(gomega.Succeed(), "an expired certificate valid at the log's time verifies")

	for _, tc := range []struct {
		name string
		k    registry.Keyless
		want string
	}{
		{"logged after the certificate expired", registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, IssuedAt: issued, LoggedAt: issued.Add(time.Hour)}, "certificate"},
		{"another identity", registry.Keyless{Issuer: ciIssuer, Subject: "mallory@evil.example"}, "mallory@evil.example"},
		{"another issuer", registry.Keyless{Issuer: "https://accounts.example.com", Subject: keylessSubject}, "https://accounts.example.com"},
		{"tampered statement", registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, Tamper: true}, "bundle sha256:"},
		{"an attestation, not a signature", registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, PredicateType: slsaProvenance}, "no signatures found (1 attestation(s)"},
	} {
		d := pushImage(t, "shop/keyless-bundle", "bad")
		g.Expect(reg.SignKeylessBundle(ctx, d, ss, tc.k)).To(gomega.Succeed(), tc.name)
		err := k8s.Create(ctx, podWithImage(ns, uniqueName("bad"), d.String()))
		g.Expect(err).To(gomega.MatchError(gomega.And(
			gomega.ContainSubstring(deniedFor(pol, d, 0)+"ci: "),
			gomega.ContainSubstring(tc.want))), tc.name)
	}
}

// A trust root that does not parse is a condition on the policy and a denial naming it, never
// an allow.
func TestMalformedTrustRoot(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	rootNS := createNamespace(t, ctx, nil)
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: rootNS, Name: "broken-root"},
		Data:       map[string]string{images.TrustRootJSON: `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": [`},
	})).To(gomega.Succeed())
	label := uniqueName("img")
	ns := createNamespace(t, ctx, map[string]string{"fixity.dev/test": label})
	pol := uniqueName("images")
	createPolicy(t, ctx, policyYAML(pol, fmt.Sprintf(`match:
  namespaceSelector: {matchLabels: {fixity.dev/test: %s}}
images:
  verify:
    authorities:
    - name: ci
      keyless:
        issuer: %s
        subject: release@acme.example
        trustRootRef: {namespace: %s, name: broken-root}
`, label, ciIssuer, rootNS)))
	g.Eventually(readyCondition(ctx, pol), eventually, poll).Should(gomega.And(
		gomega.HaveField("Status", metav1.ConditionFalse),
		gomega.HaveField("Reason", fixityv1.AuthoritiesUnusableReason),
		gomega.HaveField("Message", gomega.ContainSubstring(`spec.images.verify.authorities[0] (ci): keyless.trustRootRef: ConfigMap `+rootNS+`/broken-root: "trusted_root.json" is not a sigstore trusted root`)),
	))
	d := pushImage(t, "shop/broken-root", "1.0")
	err := k8s.Create(ctx, podWithImage(ns, "web", d.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`"trusted_root.json" is not a sigstore trusted root`)))
}

// Attestations: each rule's predicate type, signed by one of the authorities it allows, meeting
// every CEL condition; the denial names the attestation and the failed condition's message.
func TestAttestationsWithConditions(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release, audit := newKey(t), newKey(t)
	ns, pol := imagePolicy(t, ctx, "images:\n  verify:\n    authorities:\n"+
		indentBy(keyAuthorityPEM("release", release), 4)+"\n"+indentBy(keyAuthorityPEM("audit", audit), 4)+`
    attestations:
    - name: provenance
      predicateType: `+slsaProvenance+`
      authorities: [release]
      conditions:
      - expression: 'predicate.runDetails.builder.id.startsWith("https://github.com/acme/")'
        message: built by the acme release workflow
`)
	provenance := func(builder string) []byte {
		return fmt.Appendf(nil, `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},"runDetails":{"builder":{"id":%q}}}`, builder)
	}
	image := func(tag string) name.Digest {
		d := pushImage(t, "shop/attested", tag)
		g.Expect(reg.SignBundle(ctx, d, release)).To(gomega.Succeed())
		return d
	}

	good := image("good")
	g.Expect(reg.Attest(ctx, good, release, slsaProvenance, provenance("https://github.com/acme/release"))).To(gomega.Succeed())
	p := podWithImage(ns, "good", good.String())
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec["web"].Attestations).To(gomega.Equal([]string{pol + "/provenance"}))

	// cosign v2's attestations, in the .att tag, count the same, conditions included.
	legacy := pushImage(t, "shop/attested", "legacy", release)
	g.Expect(reg.AttestLegacy(ctx, legacy, release, slsaProvenance, provenance("https://github.com/acme/release"))).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, podWithImage(ns, "legacy", legacy.String()))).To(gomega.Succeed())
	mallory := pushImage(t, "shop/attested", "legacy-bad", release)
	g.Expect(reg.AttestLegacy(ctx, mallory, release, slsaProvenance, provenance("https://github.com/mallory/build"))).To(gomega.Succeed())
	err = k8s.Create(ctx, podWithImage(ns, "legacy-bad", mallory.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`attestation ` + pol + `/provenance: condition failed: "built by the acme release workflow"`)))
	byAudit := pushImage(t, "shop/attested", "legacy-audit", release)
	g.Expect(reg.AttestLegacy(ctx, byAudit, audit, slsaProvenance, provenance("https://github.com/acme/release"))).To(gomega.Succeed())
	err = k8s.Create(ctx, podWithImage(ns, "legacy-audit", byAudit.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`attestation ` + pol + `/provenance: an attestation of the .att tag is not signed by an authority it allows (` + pol + `/release: `)))

	for _, tc := range []struct {
		name          string
		signer        *registry.Key
		predicateType string
		predicate     []byte
		want          string
	}{
		{"none", nil, "", nil, "no attestation of predicate type " + slsaProvenance + " found"},
		{"another predicate type", release, "https://spdx.dev/Document", []byte(`{"spdxVersion":"SPDX-2.3"}`), "no attestation of predicate type " + slsaProvenance + " found"},
		{"failed condition", release, slsaProvenance, provenance("https://github.com/mallory/build"), `condition failed: "built by the acme release workflow"`},
		{"field missing", release, slsaProvenance, []byte(`{"buildDefinition":{}}`), `condition failed: "built by the acme release workflow" (no such key: runDetails)`},
		{"signed by an authority it does not allow", audit, slsaProvenance, provenance("https://github.com/acme/release"), "is not signed by an authority it allows (" + pol + "/release: "},
	} {
		d := image("bad")
		if tc.signer != nil {
			g.Expect(reg.Attest(ctx, d, tc.signer, tc.predicateType, tc.predicate)).To(gomega.Succeed(), tc.name)
		}
		err := k8s.Create(ctx, podWithImage(ns, uniqueName("bad"), d.String()))
		g.Expect(err).To(gomega.MatchError(gomega.And(
			gomega.ContainSubstring(fmt.Sprintf(`[policy %s] container "web": image %q lacks required attestations: attestation %s/provenance: `, pol, d.String(), pol)),
			gomega.ContainSubstring(tc.want))), tc.name)
	}
}

// A condition that does not compile rejects the policy at apply time, naming the field; an
// attestation naming an authority the policy lacks is rejected by the schema.
func TestAttestationRulesAreCheckedAtApply(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	spec := func(authority, expression string) string {
		return fmt.Sprintf(`images:
  verify:
    authorities:
    - name: release
      key: {secretRef: {namespace: default, name: cosign-pub}}
    attestations:
    - name: provenance
      predicateType: %s
      authorities: [%s]
      conditions:
      - expression: '%s'
`, slsaProvenance, authority, expression)
	}
	err := k8s.Create(ctx, fromYAML(t, policyYAML(uniqueName("bad-cel"), spec("release", `predicate.builder.id.startsWith(`))))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`admission webhook "immutabilitypolicies.fixity.dev" denied the request: policy bad-cel-`)))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(`spec.images.verify.attestations[0].conditions[0].expression: ERROR`)))

	err = k8s.Create(ctx, fromYAML(t, policyYAML(uniqueName("bad-authority"), spec("ci", `true`))))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring("attestations[].authorities must name authorities of this policy")))
}

// Image volumes are images the pod runs as surely as its containers': digest, registry,
// signature and attestation rules apply to them, at pod and workload level, and Resolve pins them.
func TestImageVolumesAreVerified(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	release := newKey(t)
	ns, pol := imagePolicy(t, ctx, verifiedBy(release))
	app := pushImage(t, "shop/app", "1.0", release)
	withVolume := func(p *corev1.Pod, reference string) *corev1.Pod {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "models",
			VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: reference, PullPolicy: corev1.PullIfNotPresent}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "models", MountPath: "/models"})
		return p
	}

	models := pushImage(t, "shop/models", "v1")
	g.Expect(reg.SignBundle(ctx, models, release)).To(gomega.Succeed())
	p := withVolume(podWithImage(ns, "tagged", app.String()), reg.Host()+"/shop/models:v1")
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Volumes[0].Image.Reference).To(gomega.Equal(models.String()), "Resolve pins the volume's tag")
	rec, _, err := admitted.ReadVerified(p)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(rec).To(gomega.HaveKeyWithValue(admitted.VolumeKey("models"), gomega.HaveField("Formats", map[string]string{pol + "/release": images.FormatBundle})))

	unsigned := pushImage(t, "shop/models", "unsigned")
	err = k8s.Create(ctx, withVolume(podWithImage(ns, "unsigned", app.String()), unsigned.String()))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`[policy %s] volume "models": image %q is not signed by enough trusted authorities`, pol, unsigned.String()))))

	dep := fromYAML(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: models, namespace: %s}
spec:
  selector: {matchLabels: {app: models}}
  template:
    metadata: {labels: {app: models}}
    spec:
      containers: [{name: web, image: %q, volumeMounts: [{name: models, mountPath: /models}]}]
      volumes: [{name: models, image: {reference: %q}}]
`, ns, app.String(), unsigned.String()))
	err = k8s.Create(ctx, dep)
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`[policy %s] volume "models": image %q is not signed by enough trusted authorities`, pol, unsigned.String()))))
}

// Without the transparency log, a keyless certificate is checked at the time a timestamp
// authority of the trust root signed: a bundle without such a timestamp is denied, and so is
// one whose certificate had expired when it was stamped.
func TestKeylessBundlesWithATimestampAuthority(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ss, ns, pol := keylessBundlePolicy(t, ctx, fixityv1.TransparencyLogIgnore)

	stamped := pushImage(t, "shop/stamped", "good")
	g.Expect(reg.SignKeylessBundle(ctx, stamped, ss, registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, Timestamp: true})).To(gomega.Succeed())
	g.Expect(k8s.Create(ctx, podWithImage(ns, "stamped", stamped.String()))).To(gomega.Succeed())

	for _, tc := range []struct {
		name string
		k    registry.Keyless
	}{
		{"no timestamp", registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject}},
		{"stamped after the certificate expired", registry.Keyless{Issuer: ciIssuer, Subject: keylessSubject, IssuedAt: time.Now().Add(-2 * time.Hour), Timestamp: true}},
	} {
		d := pushImage(t, "shop/stamped", "bad")
		g.Expect(reg.SignKeylessBundle(ctx, d, ss, tc.k)).To(gomega.Succeed(), tc.name)
		err := k8s.Create(ctx, podWithImage(ns, uniqueName("bad"), d.String()))
		g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(deniedFor(pol, d, 0)+"ci: no matching signature (bundle sha256:")), tc.name)
	}
}
