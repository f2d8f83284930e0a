package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// privateRegistry serves the loopback registry's content behind basic auth, like a private
// registry does.
func privateRegistry(t *testing.T, user, password string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pullSecret(ns, secretName, host, user, password string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil,
			`{"auths":{%q:{"username":%q,"password":%q,"auth":%q}}}`, host, user, password, auth)},
	}
}

// Registry credentials come from the pod's imagePullSecrets and its service account's, as the
// kubelet's do, so private registries need no extra configuration.
func TestPrivateRegistryUsesThePodsPullSecrets(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	host := privateRegistry(t, "ci", "s3cret")
	d := pushImage(t, "private/app", "1.0")
	image := host + "/private/app:1.0"
	ns, pol := imagePolicy(t, ctx, "images:\n  digest: Resolve\n")

	err := k8s.Create(ctx, podWithImage(ns, "anonymous", image))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(
		fmt.Sprintf(`[policy %s] container "web": image %q is not pinned by digest and could not be resolved to one: registry %s refused access (check the pod's imagePullSecrets and its service account's)`, pol, image, host))))

	g.Expect(k8s.Create(ctx, pullSecret(ns, "regcred", host, "ci", "s3cret"))).To(gomega.Succeed())
	p := podWithImage(ns, "with-secret", image)
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(host + "/private/app@" + d.DigestStr()))

	sa := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: ns, Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
	}
	g.Expect(k8s.Create(ctx, sa)).To(gomega.Succeed())
	p = podWithImage(ns, "with-sa", image)
	p.Spec.ServiceAccountName = "builder"
	g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed())
	g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(host + "/private/app@" + d.DigestStr()))
}

// What was looked up with one pod's credentials is never answered from cache to a pod without
// them: neither the digest a private tag points at nor a verdict on a private image's signatures.
func TestCredentialsAreNotShared(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	host := privateRegistry(t, "ci", "s3cret")
	release := newKey(t)
	d := pushImage(t, "private/shared", "1.0", release)
	tagged := host + "/private/shared:1.0"
	pinned := host + "/private/shared@" + d.DigestStr()
	ns, _ := imagePolicy(t, ctx, "images:\n  digest: Require\n  verify:\n    authorities:\n"+indentBy(keyAuthorityPEM("release", release), 4))
	g.Expect(k8s.Create(ctx, pullSecret(ns, "regcred", host, "ci", "s3cret"))).To(gomega.Succeed())
	withSecret := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		return p
	}

	// With the pull secret the denial names the digest, and the pinned image verifies.
	err := k8s.Create(ctx, withSecret(podWithImage(ns, "tag-with-secret", tagged)))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring("use " + pinned)))
	g.Expect(k8s.Create(ctx, withSecret(podWithImage(ns, "pinned-with-secret", pinned)))).To(gomega.Succeed())

	// At once, without it: the digest is not told and the cached verdict is not reused.
	err = k8s.Create(ctx, podWithImage(ns, "tag-anonymous", tagged))
	g.Expect(err).To(gomega.MatchError(gomega.And(
		gomega.ContainSubstring("could not be looked up"), gomega.Not(gomega.ContainSubstring(d.DigestStr())))))
	err = k8s.Create(ctx, podWithImage(ns, "pinned-anonymous", pinned))
	g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring("refused access")))
}
