package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func file(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	prodPolicy = "apiVersion: fixity.dev/v1alpha1\nkind: ImmutabilityPolicy\nmetadata: {name: prod}\nspec: {}\n"
	shopNS     = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n"
)

func TestLoadReadsAnObjectInBothSetsOfFilesOnce(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: [{name: web, image: x}]}\n"
	l, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+shopNS)}, []string{file(t, shopNS+"---\n"+pod)}, "default", nil)
	if err != nil {
		t.Fatalf("the same Namespace in both sets: %v", err)
	}
	if len(l.Policies) != 1 || len(l.Subjects) != 1 {
		t.Errorf("policies %d, subjects %d", len(l.Policies), len(l.Subjects))
	}
	if _, err := newOffline(l.Store, nil, false); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(shopNS, "team: a", "team: b", 1)
	_, err = load(context.Background(), []string{file(t, prodPolicy+"---\n"+shopNS)}, []string{file(t, other)}, "default", nil)
	if err == nil || !strings.Contains(err.Error(), "Namespace /shop is defined twice, differently") {
		t.Errorf("two different versions of one Namespace: %v", err)
	}
}

func TestLoadRefusesAFixityKindItDoesNotKnow(t *testing.T) {
	future := strings.Replace(prodPolicy, "v1alpha1", "v1beta1", 1)
	_, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+strings.Replace(future, "prod", "next", 1))}, nil, "default", nil)
	if err == nil || !strings.Contains(err.Error(), "does not know fixity.dev/v1beta1 ImmutabilityPolicy") {
		t.Errorf("a policy of an unknown version: %v", err)
	}
}

func TestLoadMergesSecretStringDataAsTheAPIServerDoes(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: fixity-system}\ndata: {a: b2xk}\nstringData: {a: new, b: two}\n"
	l, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+secret)}, nil, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range l.Store {
		if s, ok := o.(*corev1.Secret); ok {
			if string(s.Data["a"]) != "new" || string(s.Data["b"]) != "two" || s.StringData != nil {
				t.Errorf("data %v, stringData %v: stringData is written over data", s.Data, s.StringData)
			}
			return
		}
	}
	t.Fatal("no Secret in the store")
}

func TestLoadRefusesStdinTwice(t *testing.T) {
	_, err := load(context.Background(), []string{"-"}, []string{"-"}, "default", strings.NewReader(prodPolicy))
	if err == nil || !strings.Contains(err.Error(), "stdin (-) is given 2 times") {
		t.Errorf("stdin for --policy and -f: %v", err)
	}
}

func TestAnErroredAnswerIsUndecidedNotDenied(t *testing.T) {
	var v verdict
	v.Kind, v.Namespace, v.Name, v.Allowed = "Pod", "shop", "web", true
	v.add(admission.Errored(http.StatusBadRequest, errors.New("cannot decode the pod")))
	if len(v.Denials) != 0 || len(v.Errors) != 1 {
		t.Fatalf("denials %q, errors %q", v.Denials, v.Errors)
	}
	err := undecided([]verdict{v})
	if err == nil || errors.Is(err, errDenied) || !strings.Contains(err.Error(), "Pod shop/web") {
		t.Errorf("an errored answer: %v (exit 2, naming the object)", err)
	}
	v = verdict{Allowed: true}
	v.add(admission.Denied("[policy p] no"))
	if len(v.Denials) != 1 || undecided([]verdict{v}) != nil {
		t.Errorf("a denial is a denial: %+v", v)
	}
}
