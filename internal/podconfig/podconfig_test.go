package podconfig

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

var testKey = NewKey([]byte("0123456789abcdef0123456789abcdef"))

func cm(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}, Data: data}
}

func sum(t *testing.T, k *Key, o client.Object) string {
	t.Helper()
	h, ok := k.Sum(o)
	if !ok {
		t.Fatalf("no hash for %T", o)
	}
	return h
}

func TestSum(t *testing.T) {
	base := cm("cfg", map[string]string{"a": "1", "b": "2"})
	relabelled := base.DeepCopy()
	relabelled.Labels = map[string]string{"x": "y"}
	relabelled.Annotations = map[string]string{"note": "z"}
	relabelled.Immutable = ptr.To(true)
	binary := cm("cfg", map[string]string{"a": "1"})
	binary.BinaryData = map[string][]byte{"b": []byte("2")}
	if sum(t, testKey, base) != sum(t, testKey, relabelled) {
		t.Error("labels, annotations or immutable changed the hash: they are not data")
	}
	if sum(t, testKey, base) != sum(t, testKey, binary) {
		t.Error("the same key and bytes in binaryData hash differently from data")
	}
	for name, other := range map[string]client.Object{
		"a value changed":    cm("cfg", map[string]string{"a": "1", "b": "3"}),
		"a key added":        cm("cfg", map[string]string{"a": "1", "b": "2", "c": ""}),
		"bytes moved across": cm("cfg", map[string]string{"a": "12", "b": ""}),
		"a Secret, same data": &corev1.Secret{ObjectMeta: base.ObjectMeta,
			Data: map[string][]byte{"a": []byte("1"), "b": []byte("2")}},
	} {
		if sum(t, testKey, base) == sum(t, testKey, other) {
			t.Errorf("%s: same hash", name)
		}
	}
	other := NewKey([]byte("another key of thirty-two bytes!"))
	if other.ID() == testKey.ID() || sum(t, other, base) == sum(t, testKey, base) {
		t.Error("another key gives the same ID or hash")
	}
	// The bytes hashed are a format: records written by one release are read by the next.
	mixed := cm("cfg", map[string]string{"a": "1", "c": "3"})
	mixed.BinaryData = map[string][]byte{"b": {0, 1, 2}}
	secret := &corev1.Secret{Data: map[string][]byte{"x": []byte("y"), "k": nil}}
	if got := sum(t, testKey, mixed) + " " + sum(t, testKey, secret); got != "8tuyUKNAF0zl3R_uOKuqjw kdKOUKZmgwdDtY7rWlOsvA" {
		t.Errorf("the hash format changed: %s", got)
	}
	if _, ok := testKey.Sum(&corev1.Pod{}); ok {
		t.Error("a Pod was hashed")
	}
}

func TestTransformKeepsNoData(t *testing.T) {
	in := cm("cfg", map[string]string{"password": "hunter2"})
	in.Labels = map[string]string{"l": "v"}
	in.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"hunter2"}}`}
	in.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	in.Immutable = ptr.To(true)
	in.UID, in.ResourceVersion = "u1", "7"
	out, err := testKey.Transform(in)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.ConfigMap)
	if got.Data != nil || got.BinaryData != nil || got.Labels != nil || got.ManagedFields != nil {
		t.Errorf("the cached ConfigMap keeps more than its hash: %+v", got)
	}
	want := map[string]string{fixityv1.ConfigHashAnnotation: sum(t, testKey, in)}
	if len(got.Annotations) != 1 || got.Annotations[fixityv1.ConfigHashAnnotation] != want[fixityv1.ConfigHashAnnotation] {
		t.Errorf("annotations = %v, want only the hash %v", got.Annotations, want)
	}
	if got.Name != "cfg" || got.Namespace != "app" || got.UID != "u1" || got.ResourceVersion != "7" || !*got.Immutable {
		t.Errorf("metadata or immutable lost: %+v", got)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte("v")}, StringData: map[string]string{"k": "v"}}
	out, _ = testKey.Transform(sec)
	if s := out.(*corev1.Secret); s.Data != nil || s.StringData != nil {
		t.Errorf("the cached Secret keeps its data: %+v", s)
	}
	if out, _ := testKey.Transform("tombstone"); out != "tombstone" {
		t.Error("a value that is not an object was changed")
	}
}

func TestUsed(t *testing.T) {
	spec := &corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls", Optional: ptr.To(true)}}},
			{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "projected-secret"}}},
			}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}}},
		}}},
		Containers: []corev1.Container{{Name: "app",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}, Optional: ptr.To(true)}}},
			Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}, Key: "a"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "pw"}}},
				{Name: "C", Value: "plain"},
			}}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "debug-env"}}}}}}},
	}
	got := Used(spec)
	want := []struct {
		ref      string
		optional bool
		uses     int
	}{
		{"ConfigMap/app-config", false, 2}, {"ConfigMap/debug-env", false, 1}, {"ConfigMap/env", true, 1},
		{"Secret/db", false, 1}, {"Secret/projected-secret", false, 1},
		{"Secret/tls", false, 2}, // optional as a volume, required by the init container's envFrom
	}
	if len(got) != len(want) {
		t.Fatalf("Used = %v, want %d objects (no kube-root-ca.crt, no pull secret)", got, len(want))
	}
	for i, w := range want {
		if got[i].String() != w.ref || got[i].Optional != w.optional || len(got[i].Uses) != w.uses {
			t.Errorf("object %d = %s optional=%v uses=%v, want %s optional=%v with %d uses", i, got[i], got[i].Optional, got[i].Uses, w.ref, w.optional, w.uses)
		}
	}
	if len(Used(&corev1.PodSpec{})) != 0 {
		t.Error("an empty spec uses objects")
	}
}

func TestRecord(t *testing.T) {
	rec := Record{Key: testKey.ID(), Objects: map[string]string{"Secret/db": "h2", "ConfigMap/cfg": "h1", "Pod/x": "h", "ConfigMap/": "h"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p", Annotations: map[string]string{fixityv1.ConfigAnnotation: rec.Encode()}}}
	got, ok, err := ReadRecord(pod)
	if err != nil || !ok || got.Key != rec.Key {
		t.Fatalf("ReadRecord = %v, %v, %v", got, ok, err)
	}
	if e := got.Entries(); len(e) != 2 || e[0] != (Entry{"ConfigMap", "cfg", "h1"}) || e[1] != (Entry{"Secret", "db", "h2"}) {
		t.Errorf("Entries = %v, want the two well-formed objects, sorted", e)
	}
	if v := IndexValues(pod); len(v) != 2 || v[0] != "ConfigMap/app/cfg" || v[1] != "Secret/app/db" {
		t.Errorf("IndexValues = %v", v)
	}
	pod.Annotations[fixityv1.ConfigAnnotation] = "{"
	if _, ok, err := ReadRecord(pod); !ok || err == nil {
		t.Error("a malformed record was read without an error")
	}
	if IndexValues(pod) != nil {
		t.Error("a malformed record was indexed")
	}
	if _, ok, _ := ReadRecord(&corev1.Pod{}); ok {
		t.Error("a pod without a record has one")
	}
}

func newStore(cached []client.Object, live []client.Object) *Store {
	var slim []client.Object
	for _, o := range cached {
		t, _ := testKey.Transform(o.DeepCopyObject())
		slim = append(slim, t.(client.Object))
	}
	return &Store{
		Key:   testKey,
		Cache: fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(slim...).Build(),
		Live:  fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(live...).Build(),
	}
}

func TestStoreGet(t *testing.T) {
	ctx := context.Background()
	old, fresh := cm("cfg", map[string]string{"a": "1"}), cm("new", map[string]string{"b": "2"})
	fresh.Immutable = ptr.To(true)
	s := newStore([]client.Object{old}, []client.Object{old, fresh})
	o, found, err := s.Get(ctx, "app", KindConfigMap, "cfg")
	if err != nil || !found || o.Hash != sum(t, testKey, old) || o.Immutable {
		t.Errorf("cached object = %+v, %v, %v", o, found, err)
	}
	o, found, err = s.Get(ctx, "app", KindConfigMap, "new")
	if err != nil || !found || o.Hash != sum(t, testKey, fresh) || !o.Immutable {
		t.Errorf("an object not cached yet is read from the API server: got %+v, %v, %v", o, found, err)
	}
	if _, found, err := s.Get(ctx, "app", KindSecret, "cfg"); found || err != nil {
		t.Errorf("a missing Secret: found=%v err=%v", found, err)
	}
	// A user-written hash annotation on the live object is never believed.
	forged := cm("forged", map[string]string{"a": "2"})
	forged.Annotations = map[string]string{fixityv1.ConfigHashAnnotation: sum(t, testKey, old)}
	s = newStore(nil, []client.Object{forged})
	if o, _, _ := s.Get(ctx, "app", KindConfigMap, "forged"); o.Hash != sum(t, testKey, forged) {
		t.Error("the hash annotation of a live object was believed")
	}
	if _, _, err := s.Get(ctx, "app", "Pod", "x"); err == nil {
		t.Error("an unknown kind gave no error")
	}
}

func TestChanged(t *testing.T) {
	ctx := context.Background()
	same, edited, gone := cm("same", map[string]string{"a": "1"}), cm("edited", map[string]string{"a": "1"}), cm("gone", map[string]string{"a": "1"})
	rec := Record{Key: testKey.ID(), Objects: map[string]string{
		"ConfigMap/same": sum(t, testKey, same), "ConfigMap/edited": sum(t, testKey, edited), "ConfigMap/gone": sum(t, testKey, gone),
	}}
	now := cm("edited", map[string]string{"a": "2"})
	s := newStore([]client.Object{same, now}, []client.Object{same, now})
	changed, deleted, err := s.Changed(ctx, "app", rec)
	if err != nil || len(changed) != 1 || changed[0].Name != "edited" || len(deleted) != 1 || deleted[0].Name != "gone" {
		t.Errorf("Changed = %v, %v, %v; want edited changed and gone deleted", changed, deleted, err)
	}
	// The cache behind the API server: the change it shows is not yet the truth.
	s = newStore([]client.Object{now}, []client.Object{edited})
	if changed, deleted, err := s.Changed(ctx, "app", Record{Key: testKey.ID(), Objects: map[string]string{"ConfigMap/edited": sum(t, testKey, edited)}}); len(changed)+len(deleted) != 0 || err != nil {
		t.Errorf("a stale cache made drift: %v, %v, %v", changed, deleted, err)
	}
	// Without a config cache every object is read from the API server.
	s = newStore(nil, []client.Object{same, now})
	s.Cache = nil
	if changed, deleted, err := s.Changed(ctx, "app", rec); err != nil || len(changed) != 1 || len(deleted) != 1 {
		t.Errorf("Changed without a cache = %v, %v, %v; want edited changed and gone deleted", changed, deleted, err)
	}
	other := rec
	other.Key = "another"
	if changed, deleted, _ := s.Changed(ctx, "app", other); len(changed)+len(deleted) != 0 {
		t.Error("a record made with another key was taken as evidence")
	}
	// An API server that cannot answer decides nothing.
	s = newStore(nil, nil)
	s.Live = interceptor.NewClient(s.Live.(client.WithWatch), interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return errors.New("connection refused")
	}})
	if _, _, err := s.Changed(ctx, "app", rec); err == nil {
		t.Error("an unreadable object was decided")
	}
}

func TestEnsureKey(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build()
	k1, err := EnsureKey(ctx, c, "fixity-system")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := EnsureKey(ctx, c, "fixity-system")
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("the second start made another key: %v, %v", k2, err)
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "fixity-system", Name: fixityv1.ConfigKeySecret}, s); err != nil || len(s.Data["key"]) != 32 || !*s.Immutable {
		t.Fatalf("key Secret = %+v, %v", s, err)
	}

	// Another replica creates it between our read and our create: theirs is used.
	theirs := NewKey([]byte("the other replica's key, 32 byte"))
	created := false
	race := interceptor.NewClient(fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build(), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if !created {
				created = true
				other := obj.DeepCopyObject().(*corev1.Secret)
				other.Data = map[string][]byte{"key": []byte("the other replica's key, 32 byte")}
				if err := c.Create(ctx, other); err != nil {
					return err
				}
				return apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, obj.GetName())
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	k, err := EnsureKey(ctx, race, "fixity-system")
	if err != nil || k.ID() != theirs.ID() {
		t.Errorf("after losing the race: key %v, err %v; want the other replica's", k, err)
	}

	short := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fixity-system", Name: fixityv1.ConfigKeySecret}, Data: map[string][]byte{"key": []byte("short")}}).Build()
	if _, err := EnsureKey(ctx, short, "fixity-system"); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestRestoreKey(t *testing.T) {
	ctx := context.Background()
	ours := NewKey([]byte("this replica's key, of 32 bytes."))
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build()
	if created, same, err := RestoreKey(ctx, c, "fixity-system", ours); !created || !same || err != nil {
		t.Fatalf("restoring a deleted key: created %t, same %t, err %v", created, same, err)
	}
	k, err := EnsureKey(ctx, c, "fixity-system")
	if err != nil || k.ID() != ours.ID() {
		t.Fatalf("a replica starting after the restore reads key %v (err %v), want ours %s", k, err, ours.ID())
	}
	if created, same, err := RestoreKey(ctx, c, "fixity-system", ours); created || !same || err != nil {
		t.Errorf("another replica restored it first, with the same key: created %t, same %t, err %v", created, same, err)
	}
	other := NewKey([]byte("a key made while ours was gone.."))
	if created, same, err := RestoreKey(ctx, c, "fixity-system", other); created || same || err != nil {
		t.Errorf("a replica holding another key: created %t, same %t, err %v; want false, false, no error", created, same, err)
	}
}
