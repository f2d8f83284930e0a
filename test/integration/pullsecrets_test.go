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
