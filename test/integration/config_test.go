package integration

import (
	"context"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// config.mutable: Deny admits pods and workloads only with immutable ConfigMaps and Secrets,
// whichever way they are used, and names each mutable one with what to do; Audit says the same
// as a warning. A missing object is left to the kubelet to report.
func TestConfigMutableDeny(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	ns, pol := imagePolicy(t, ctx, "config:\n  mutable: Deny\n")
	auditNS, auditPol := imagePolicy(t, ctx, "mode: Audit\nconfig:\n  mutable: Deny\n")
	for _, n := range []string{ns, auditNS} {
		for _, o := range []client.Object{
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "settings"}, Data: map[string]string{"a": "1"}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "settings-v1"}, Data: map[string]string{"a": "1"}, Immutable: ptr.To(true)},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "db"}, StringData: map[string]string{"pw": "x"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "db-v1"}, StringData: map[string]string{"pw": "x"}, Immutable: ptr.To(true)},
		} {
			g.Expect(k8s.Create(ctx, o)).To(gomega.Succeed())
		}
	}
	cmVolume := func(name string, optional bool) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr.To(optional)}}})
		}
	}
	secretProjected := func(name string) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}})
		}
	}
	envFromSecret := func(name string) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Containers[0].EnvFrom = append(s.Containers[0].EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
		}
	}
	envKeyFromConfigMap := func(name string) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "a"}}})
		}
	}
	denied := []struct {
		name string
		edit func(*corev1.PodSpec)
		want string
	}{
		{"ConfigMap volume", cmVolume("settings", false), `ConfigMap "settings" (volume "cfg") is mutable, and spec.config.mutable is Deny: create a new one with immutable: true under a new name`},
		{"optional ConfigMap volume that exists", cmVolume("settings", true), `ConfigMap "settings" (volume "cfg") is mutable`},
		{"Secret in a projected volume", secretProjected("db"), `Secret "db" (volume "all") is mutable`},
		{"Secret envFrom", envFromSecret("db"), `Secret "db" (container "web" envFrom) is mutable`},
		{"ConfigMap env valueFrom", envKeyFromConfigMap("settings"), `ConfigMap "settings" (container "web" env A) is mutable`},
	}
	warnings, warned := warningsClient(t)
	for i, tc := range denied {
		p := pod(ns, fmt.Sprintf("denied-%d", i))
		tc.edit(&p.Spec)
		g.Expect(k8s.Create(ctx, p)).To(gomega.MatchError(gomega.ContainSubstring("[policy "+pol+"] "+tc.want)), tc.name)

		p = pod(auditNS, fmt.Sprintf("warned-%d", i))
		tc.edit(&p.Spec)
		g.Expect(warnings.Create(ctx, p)).To(gomega.Succeed(), tc.name)
		g.Expect(warned()).To(gomega.ContainElement(gomega.ContainSubstring("audit: [policy "+auditPol+"] "+tc.want)), tc.name)
	}

	for i, edit := range []func(*corev1.PodSpec){
		cmVolume("settings-v1", false), secretProjected("db-v1"), envFromSecret("db-v1"), envKeyFromConfigMap("settings-v1"),
		cmVolume("not-created", false), cmVolume("not-created-optional", true),
	} {
		p := pod(ns, fmt.Sprintf("admitted-%d", i))
		edit(&p.Spec)
		g.Expect(k8s.Create(ctx, p)).To(gomega.Succeed(), "pod %d uses only immutable or missing objects", i)
	}

	d := deployment(ns, "web")
	cmVolume("settings", false)(&d.Spec.Template.Spec)
	g.Expect(k8s.Create(ctx, d)).To(gomega.MatchError(gomega.ContainSubstring(`[policy ` + pol + `] ConfigMap "settings" (volume "cfg") is mutable`)))
	d = deployment(ns, "web")
	cmVolume("settings-v1", false)(&d.Spec.Template.Spec)
	g.Expect(k8s.Create(ctx, d)).To(gomega.Succeed())
}

// The config hash key's Secret, deleted, is put back with the same key by the running operator,
// so a replica starting later does not make a new key and every pod's record still counts.
func TestDeletedConfigKeyIsRestored(t *testing.T) {
	g := gomega.NewWithT(t)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: fixityv1.OperatorNamespace, Name: fixityv1.ConfigKeySecret}
	before := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, key, before)).To(gomega.Succeed())
	g.Expect(k8s.Delete(ctx, before)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		after := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, key, after)).To(gomega.Succeed())
		g.Expect(after.UID).NotTo(gomega.Equal(before.UID))
		g.Expect(after.Data).To(gomega.Equal(before.Data), "the same key")
		g.Expect(after.Immutable).To(gomega.Equal(ptr.To(true)))
	}, eventually, poll).Should(gomega.Succeed())
}
