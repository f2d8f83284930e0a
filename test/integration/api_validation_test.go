package integration

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/cluster"
)

const validKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM
5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==
-----END PUBLIC KEY-----`

// keyAuthority is a valid key authority named name, as YAML list item lines.
func keyAuthority(name string) string {
	return "- name: " + name + "\n  key:\n    publicKey: |\n" + indentBy(validKey, 6)
}

// authorities is n valid key authorities named a0, a1, ...
func authorities(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = keyAuthority(fmt.Sprintf("a%d", i))
	}
	return out
}

// listOf is n items of a YAML flow list, each format with its index.
func listOf(n int, format string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(format, i)
	}
	return strings.Join(items, ", ")
}

func indentBy(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// verifyWith wraps authority lines in spec.images.verify.
func verifyWith(extra string, authorities ...string) string {
	s := "images:\n  verify:\n" + extra + "    authorities:\n"
	for _, a := range authorities {
		s += indentBy(a, 4) + "\n"
	}
	return s
}

const keyless = `- name: ci
  keyless:
    issuer: https://token.actions.githubusercontent.com
    subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main
    trustRootRef: {namespace: fixity-system, name: sigstore-trust-root}`

func TestPolicyCreateIsRejected(t *testing.T) {
	cases := []struct {
		name  string
		spec  string
		field string // the field path the error must name
		msg   string // and what it must say
	}{
		{"unknown mode", "mode: Strict", "spec.mode", `Unsupported value: "Strict"`},
		{"unknown digest rule", "images:\n  digest: Sometimes", "spec.images.digest", `Unsupported value: "Sometimes"`},
		{"registry with a URL scheme", "images:\n  allowedRegistries: [\"https://ghcr.io/acme/\"]", "spec.images.allowedRegistries[0]", "without a URL scheme"},
		{"empty registry prefix", "images:\n  allowedRegistries: [\"\"]", "spec.images.allowedRegistries[0]", "at least 1 chars long"},
		{"duplicate registry prefix", "images:\n  allowedRegistries: [ghcr.io/a/, ghcr.io/a/]", "spec.images.allowedRegistries[1]", "Duplicate value"},
		{"threshold above the number of authorities", verifyWith("    threshold: 2\n", keyAuthority("release")), "spec.images.verify: Invalid value", "threshold must not exceed the number of authorities"},
		{"threshold above 16", verifyWith("    threshold: 17\n", keyAuthority("release")), "spec.images.verify.threshold", "less than or equal to 16"},
		{"more than 16 authorities", verifyWith("", authorities(17)...), "spec.images.verify.authorities", "must have at most 16 items"},
		{"authority name too long", verifyWith("", keyAuthority(strings.Repeat("a", 64))), "spec.images.verify.authorities[0].name", "Too long"},
		{"publicKey too long", verifyWith("", "- name: big\n  key:\n    publicKey: \"-----BEGIN PUBLIC KEY-----"+strings.Repeat("A", 16384)+"\""), "spec.images.verify.authorities[0].key.publicKey", "Too long"},
		{"secretRef with an empty name", verifyWith("", "- name: s\n  key:\n    secretRef: {namespace: fixity-system, name: \"\"}"), "spec.images.verify.authorities[0].key.secretRef.name", "at least 1 chars long"},
		{"keyless issuer without a scheme", verifyWith("", strings.Replace(keyless, "https://token.actions.githubusercontent.com", "/issuer", 1)), "spec.images.verify.authorities[0].keyless.issuer", "issuer must be a URL"},
		{"keyless issuer with another scheme", verifyWith("", strings.Replace(keyless, "https://token.actions.githubusercontent.com", "ftp://issuer.example", 1)), "spec.images.verify.authorities[0].keyless.issuer", "issuer must be a URL"},
		{"keyless subjectRegExp too long", verifyWith("", strings.Replace(keyless, "subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "subjectRegExp: "+strings.Repeat("a", 1025), 1)), "spec.images.verify.authorities[0].keyless.subjectRegExp", "Too long"},
		{"trust root with an empty name", verifyWith("", strings.Replace(keyless, "name: sigstore-trust-root", `name: ""`, 1)), "spec.images.verify.authorities[0].keyless.trustRootRef.name", "at least 1 chars long"},
		{"more than 64 registry prefixes", "images:\n  allowedRegistries: [" + listOf(65, "r%d.example/") + "]", "spec.images.allowedRegistries", "must have at most 64 items"},
		{"registry prefix too long", "images:\n  allowedRegistries: [" + strings.Repeat("a", 256) + "]", "spec.images.allowedRegistries[0]", "Too long"},
		{"more than 256 excluded namespaces", "match:\n  excludeNamespaces: [" + listOf(257, "ns-%d") + "]", "spec.match.excludeNamespaces", "must have at most 256 items"},
		{"excluded namespace too long", "match:\n  excludeNamespaces: [" + strings.Repeat("a", 64) + "]", "spec.match.excludeNamespaces[0]", "Too long"},
		{"config.mutable of another value", "config:\n  mutable: Warn", "spec.config.mutable", `Unsupported value: "Warn"`},
		{"unknown drift check", "drift:\n  checks: [ImageDigest, Mystery]", "spec.drift.checks[1]", "Unsupported value"},
		{"writableLayerLimit zero", "drift:\n  writableLayerLimit: 0", "spec.drift.writableLayerLimit", "writableLayerLimit must be more than 0"},
		{"writableLayerLimit negative", "drift:\n  writableLayerLimit: -1Mi", "spec.drift.writableLayerLimit", "writableLayerLimit must be more than 0"},
		{"writableLayerLimit not a quantity", "drift:\n  writableLayerLimit: lots", "spec.drift.writableLayerLimit", "quantities must match"},
		{"duplicate drift check", "drift:\n  checks: [ImageDigest, ImageDigest]", "spec.drift.checks[1]", "Duplicate value"},
		{"threshold zero", verifyWith("    threshold: 0\n", keyAuthority("release")), "spec.images.verify.threshold", "greater than or equal to 1"},
		{"no authorities", "images:\n  verify:\n    authorities: []", "spec.images.verify.authorities", "at least 1 items"},
		{"authorities missing", "images:\n  verify:\n    threshold: 1", "spec.images.verify.authorities", "Required value"},
		{"duplicate authority names", verifyWith("", keyAuthority("release"), keyAuthority("release")), "spec.images.verify.authorities[1]", "Duplicate value"},
		{"authority name not a DNS label", verifyWith("", keyAuthority("Release!")), "spec.images.verify.authorities[0].name", "should match"},
		{"authority with key and keyless", verifyWith("", keyAuthority("both")+"\n"+strings.TrimPrefix(keyless, "- name: ci\n")), "spec.images.verify.authorities[0]", "exactly one of key or keyless must be set"},
		{"authority with neither key nor keyless", verifyWith("", "- name: empty"), "spec.images.verify.authorities[0]", "exactly one of key or keyless must be set"},
		{"key with publicKey and secretRef", verifyWith("", keyAuthority("both")+"\n    secretRef: {namespace: fixity-system, name: cosign-pub}"), "spec.images.verify.authorities[0].key", "exactly one of publicKey or secretRef must be set"},
		{"key with neither publicKey nor secretRef", verifyWith("", "- name: none\n  key: {}"), "spec.images.verify.authorities[0].key", "exactly one of publicKey or secretRef must be set"},
		{"publicKey not PEM", verifyWith("", "- name: bad\n  key:\n    publicKey: not-a-key"), "spec.images.verify.authorities[0].key.publicKey", "publicKey must be a PEM public key"},
		{"secretRef without namespace", verifyWith("", "- name: s\n  key:\n    secretRef: {name: cosign-pub}"), "spec.images.verify.authorities[0].key.secretRef.namespace", "Required value"},
		{"unknown transparencyLog rule", verifyWith("", keyAuthority("release")+"\n  transparencyLog: Sometimes"), "spec.images.verify.authorities[0].transparencyLog", `Unsupported value: "Sometimes"`},
		{"keyless with subject and subjectRegExp", verifyWith("", keyless+"\n    subjectRegExp: '^https://github.com/acme/.*$'"), "spec.images.verify.authorities[0].keyless", "exactly one of subject or subjectRegExp must be set"},
		{"keyless with neither subject nor subjectRegExp", verifyWith("", "- name: ci\n  keyless:\n    issuer: https://issuer.example\n    trustRootRef: {namespace: fixity-system, name: root}"), "spec.images.verify.authorities[0].keyless", "exactly one of subject or subjectRegExp must be set"},
		{"keyless issuer not a URL", verifyWith("", strings.Replace(keyless, "https://token.actions.githubusercontent.com", "not a url", 1)), "spec.images.verify.authorities[0].keyless.issuer", "issuer must be a URL"},
		{"keyless without trust root", verifyWith("", "- name: ci\n  keyless:\n    issuer: https://issuer.example\n    subject: me"), "spec.images.verify.authorities[0].keyless.trustRootRef", "Required value"},
		{"trust root of unknown kind", verifyWith("", strings.Replace(keyless, "{namespace:", "{kind: Pod, namespace:", 1)), "spec.images.verify.authorities[0].keyless.trustRootRef.kind", `Unsupported value: "Pod"`},
		{"unknown exec rule", "runtime:\n  exec: Sometimes", "spec.runtime.exec", `Unsupported value: "Sometimes"`},
		{"unknown portForward rule", "runtime:\n  portForward: Maybe", "spec.runtime.portForward", `Unsupported value: "Maybe"`},
		{"unknown ephemeralContainers rule", "runtime:\n  ephemeralContainers: Maybe", "spec.runtime.ephemeralContainers", `Unsupported value: "Maybe"`},
		{"unknown privileged rule", "runtime:\n  privileged: Maybe", "spec.runtime.privileged", `Unsupported value: "Maybe"`},
		{"unknown readOnlyRootFilesystem rule", "runtime:\n  readOnlyRootFilesystem: Deny", "spec.runtime.readOnlyRootFilesystem", `Unsupported value: "Deny"`},
		{"more than 3 approvals", "runtime:\n  approvals: 4", "spec.runtime.approvals", "less than or equal to 3"},
		{"negative approvals", "runtime:\n  approvals: -1", "spec.runtime.approvals", "greater than or equal to 0"},
		{"unknown drift action", "drift:\n  action: Delete", "spec.drift.action", `Unsupported value: "Delete"`},
		{"unknown jobPods rule", "drift:\n  jobPods: Restart", "spec.drift.jobPods", `Unsupported value: "Restart"`},
		{"unknown drift check", "drift:\n  checks: [ImageDigest, Vibes]", "spec.drift.checks[1]", `Unsupported value: "Vibes"`},
		{"maxDriftedPercent above 100", "drift:\n  maxDriftedPercent: 101", "spec.drift.maxDriftedPercent", "less than or equal to 100"},
		{"maxDriftedPercent negative", "drift:\n  maxDriftedPercent: -1", "spec.drift.maxDriftedPercent", "greater than or equal to 0"},
		{"excluded namespace not a DNS label", "match:\n  excludeNamespaces: [Kube_System]", "spec.match.excludeNamespaces[0]", "should match"},
		{"unknown field", "images:\n  digests: Require", "spec.images.digests", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			obj := fromYAML(t, policyYAML(uniqueName("invalid"), tc.spec))
			err := k8s.Create(context.Background(), obj, client.FieldValidation("Strict"))
			g.Expect(err).To(gomega.HaveOccurred(), "the API server accepted:\n%s", tc.spec)
			g.Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(gomega.BeTrue(), "unexpected error type: %v", err)
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.field), "the error must name the field")
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.msg))
		})
	}
}

func TestPolicyDefaults(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	name := uniqueName("defaults")
	createPolicy(t, ctx, policyYAML(name, "{}"))

	p := &fixityv1.ImmutabilityPolicy{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Mode).To(gomega.Equal(fixityv1.ModeEnforce))
	g.Expect(p.Spec.Images.Digest).To(gomega.Equal(fixityv1.DigestResolve))
	g.Expect(p.Spec.Images.Verify).To(gomega.BeNil(), "no signature requirement unless asked for")
	g.Expect(p.Spec.Runtime).To(gomega.Equal(fixityv1.RuntimeRules{
		Exec: fixityv1.Deny, PortForward: fixityv1.Allow, EphemeralContainers: fixityv1.Deny,
		Privileged: fixityv1.Deny, ReadOnlyRootFilesystem: fixityv1.Ignore,
	}))
	g.Expect(p.Spec.Drift.Action).To(gomega.Equal(fixityv1.DriftReplace))
	g.Expect(p.Spec.Drift.JobPods).To(gomega.Equal(fixityv1.DriftReport), "Job pods are reported unless the policy says otherwise")
	g.Expect(p.Spec.Drift.Checks).To(gomega.Equal(fixityv1.DefaultDriftChecks), "WritableLayer is opt-in")
	g.Expect(p.Spec.Drift.WritableLayerLimit).To(gomega.HaveValue(gomega.Equal(resource.MustParse("1Mi"))))
	g.Expect(p.Spec.Config.Mutable).To(gomega.Equal(fixityv1.ConfigReplace))
	g.Expect(p.Spec.Drift.MaxDriftedPercent).To(gomega.HaveValue(gomega.BeEquivalentTo(50)))

	// Defaults inside verify: threshold 1, transparencyLog Ignore, the Secret key, the trust root kind.
	name = uniqueName("verify-defaults")
	spec := verifyWith("", "- name: s\n  key:\n    secretRef: {namespace: fixity-system, name: cosign-pub}", keyless)
	createPolicy(t, ctx, policyYAML(name, isolated+spec))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, p)).To(gomega.Succeed())
	v := p.Spec.Images.Verify
	g.Expect(v.Threshold).To(gomega.BeEquivalentTo(1))
	g.Expect(v.Authorities[0].TransparencyLog).To(gomega.Equal(fixityv1.TransparencyLogIgnore))
	g.Expect(v.Authorities[0].Key.SecretRef.Key).To(gomega.Equal("cosign.pub"))
	g.Expect(v.Authorities[1].Keyless.TrustRootRef.Kind).To(gomega.Equal("ConfigMap"))
}

func TestPolicyValidExamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	valid := map[string]string{
		"threshold 2 of 3":                   isolated + verifyWith("    threshold: 2\n", keyAuthority("a"), keyAuthority("b"), keyless),
		"keyless regexp":                     isolated + verifyWith("", strings.Replace(keyless, "subject: ", "subjectRegExp: ", 1)),
		"audit, report":                      isolated + "mode: Audit\ndrift:\n  action: Report\n  checks: [SpecChange]\n  maxDriftedPercent: 0",
		"all seven checks, a limit in bytes": isolated + "drift:\n  checks: [ImageDigest, EphemeralContainers, InteractiveAccess, SpecChange, Unverified, ConfigChange, WritableLayer]\n  writableLayerLimit: 1048576",
		"selectors":                          "match:\n  namespaceSelector: {matchLabels: {team: shop}}\n  podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}\n  excludeNamespaces: [sandbox]",
	}
	for name, spec := range valid {
		t.Run(name, func(t *testing.T) {
			createPolicy(t, ctx, policyYAML(uniqueName("valid"), spec))
		})
	}
}

func TestGrantCreateIsRejected(t *testing.T) {
	ns := createNamespace(t, context.Background(), nil)
	const ok = "pods: [web-0]\naccess: [Exec]\nreason: \"INC-1234: checkout returns 500\"\n"
	cases := []struct {
		name, spec, field, msg string
	}{
		{"unknown access kind", "pods: [web-0]\naccess: [Shell]\nreason: \"INC-1234: checkout returns 500\"", "spec.access[0]", `Unsupported value: "Shell"`},
		{"no access kinds", "pods: [web-0]\naccess: []\nreason: \"INC-1234: checkout returns 500\"", "spec.access", "at least 1 items"},
		{"missing reason", "pods: [web-0]\naccess: [Exec]", "spec.reason", "Required value"},
		{"reason too short", "pods: [web-0]\naccess: [Exec]\nreason: oops", "spec.reason", "at least 10 chars long"},
		{"duration zero", ok + "duration: 0s", "spec.duration", "duration must be greater than 0"},
		{"duration over 1h", ok + "duration: 61m", "spec.duration", "duration must be at most 1h"},
		{"duration not a duration", ok + "duration: soon", "spec.duration", "should match"},
		{"pods and podSelector", ok + "podSelector: {matchLabels: {app: web}}", "spec: Invalid value", "exactly one of pods or podSelector must be set"},
		{"neither pods nor podSelector", "access: [Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec: Invalid value", "exactly one of pods or podSelector must be set"},
		{"more than 64 pods", "pods: [" + listOf(65, "web-%d") + "]\naccess: [Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec.pods", "must have at most 64 items"},
		{"duplicate pod", "pods: [web-0, web-0]\naccess: [Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec.pods[1]", "Duplicate value"},
		{"duplicate access kind", "pods: [web-0]\naccess: [Exec, Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec.access[1]", "Duplicate value"},
		{"reason too long", "pods: [web-0]\naccess: [Exec]\nreason: " + strings.Repeat("a", 1025), "spec.reason", "Too long"},
		{"empty pod list", "pods: []\naccess: [Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec.pods", "at least 1 items"},
		{"pod name invalid", "pods: [Web_0]\naccess: [Exec]\nreason: \"INC-1234: checkout returns 500\"", "spec.pods[0]", "should match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			err := k8s.Create(context.Background(), fromYAML(t, grantYAML(ns, uniqueName("grant"), tc.spec)), client.FieldValidation("Strict"))
			g.Expect(err).To(gomega.HaveOccurred(), "the API server accepted:\n%s", tc.spec)
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.field))
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.msg))
		})
	}
}

func TestApprovalCreateIsRejected(t *testing.T) {
	ns := createNamespace(t, context.Background(), nil)
	for _, tc := range []struct {
		name, spec, field, msg string
	}{
		{"no grant", "{}", "spec.grant", "Required value"},
		{"grant name invalid", "{grant: Inc_1}", "spec.grant", "should match"},
		{"grant name too long", "{grant: " + strings.Repeat("a", 254) + "}", "spec.grant", "Too long"},
		{"unknown field", "{grant: inc-1, user: bob}", "spec.user", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			doc := fmt.Sprintf("apiVersion: fixity.dev/v1alpha1\nkind: AccessApproval\nmetadata: {name: %s, namespace: %s}\nspec: %s\n", uniqueName("approval"), ns, tc.spec)
			err := k8s.Create(context.Background(), fromYAML(t, doc), client.FieldValidation("Strict"))
			g.Expect(err).To(gomega.HaveOccurred(), "the API server accepted:\n%s", doc)
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.field))
			g.Expect(err.Error()).To(gomega.ContainSubstring(tc.msg))
		})
	}
}

func TestGrantDefaultsAndImmutableSpec(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns := createNamespace(t, ctx, nil)
	name := uniqueName("grant")
	g.Expect(k8s.Create(ctx, fromYAML(t, grantYAML(ns, name, "pods: [web-0]\naccess: [Exec, Debug]\nreason: \"INC-1234: checkout returns 500\"")))).To(gomega.Succeed())

	grant := &fixityv1.AccessGrant{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, grant)).To(gomega.Succeed())
	g.Expect(grant.Spec.Duration).NotTo(gomega.BeNil())
	g.Expect(grant.Spec.Duration.Duration.String()).To(gomega.Equal("5m0s"))

	// Widening a grant after the fact is exactly what must be impossible.
	for field, value := range map[string]any{
		"duration": "1h",
		"pods":     []any{"web-0", "db-0"},
		"access":   []any{"Exec", "Debug", "PortForward"},
		"reason":   "something else entirely",
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(fixityv1.GroupVersion.WithKind("AccessGrant"))
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(gomega.Succeed())
		before := u.DeepCopy()
		g.Expect(unstructured.SetNestedField(u.Object, value, "spec", field)).To(gomega.Succeed())
		// A merge patch, as kubectl sends: no resourceVersion, so only the rule can refuse it.
		err := k8s.Patch(ctx, u, client.MergeFrom(before))
		g.Expect(err).To(gomega.HaveOccurred(), "changing spec.%s was accepted", field)
		g.Expect(err.Error()).To(gomega.ContainSubstring("spec is immutable"))
	}
}

// The samples are what newcomers apply first; they must stay valid.
func TestSamplesAreValid(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	root, err := cluster.RepoRoot()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else {
				g.Expect(err).NotTo(gomega.HaveOccurred(), f)
			}
			objs = append(objs, u)
		}
	}
	// Namespaces first, so namespaced samples find theirs.
	rank := func(u *unstructured.Unstructured) int {
		if u.GetKind() == "Namespace" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return cmp.Compare(rank(a), rank(b)) })
	for _, u := range objs {
		err := k8s.Create(ctx, u, client.FieldValidation("Strict"))
		if !apierrors.IsAlreadyExists(err) {
			g.Expect(err).NotTo(gomega.HaveOccurred(), "sample %s %s", u.GetKind(), u.GetName())
		}
		if u.GetKind() == "ImmutabilityPolicy" || u.GetKind() == "NodeImmutabilityPolicy" {
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), u) })
		}
	}
	kinds := map[string]bool{}
	for _, u := range objs {
		kinds[u.GetKind()] = true
	}
	g.Expect(kinds).To(gomega.HaveKey("ImmutabilityPolicy"))
	g.Expect(kinds).To(gomega.HaveKey("AccessGrant"))
	g.Expect(kinds).To(gomega.HaveKey("NodeImmutabilityPolicy"))
	g.Expect(kinds).To(gomega.HaveKey("ClusterRoleBinding"))
}

// The boundaries are inside: a grant of exactly 1h, by podSelector, is accepted.
func TestGrantAtTheBoundsIsAccepted(t *testing.T) {
	g := gomega.NewWithT(t)
	ns := createNamespace(t, context.Background(), nil)
	spec := "podSelector: {matchLabels: {app: web}}\naccess: [Exec, Attach, PortForward, Debug]\nduration: 1h\nreason: \"INC-1234: checkout returns 500\""
	g.Expect(k8s.Create(context.Background(), fromYAML(t, grantYAML(ns, uniqueName("grant"), spec)), client.FieldValidation("Strict"))).To(gomega.Succeed())
}
