package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
	l, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+shopNS)}, []string{file(t, shopNS+"---\n"+pod)}, "default", false, nil)
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
	_, err = load(context.Background(), []string{file(t, prodPolicy+"---\n"+shopNS)}, []string{file(t, other)}, "default", false, nil)
	if err == nil || !strings.Contains(err.Error(), "Namespace /shop is defined twice, differently") {
		t.Errorf("two different versions of one Namespace: %v", err)
	}
}

func TestLoadRefusesAFixityKindItDoesNotKnow(t *testing.T) {
	future := strings.Replace(prodPolicy, "v1alpha1", "v1beta1", 1)
	_, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+strings.Replace(future, "prod", "next", 1))}, nil, "default", false, nil)
	if err == nil || !strings.Contains(err.Error(), "does not know fixity.dev/v1beta1 ImmutabilityPolicy") {
		t.Errorf("a policy of an unknown version: %v", err)
	}
}

func TestLoadMergesSecretStringDataAsTheAPIServerDoes(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: fixity-system}\ndata: {a: b2xk}\nstringData: {a: new, b: two}\n"
	l, err := load(context.Background(), []string{file(t, prodPolicy+"---\n"+secret)}, nil, "default", false, nil)
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
	_, err := load(context.Background(), []string{"-"}, []string{"-"}, "default", false, strings.NewReader(prodPolicy))
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

func TestLoadPutsSubjectsInTheNamespaceAndRefusesAnotherWithN(t *testing.T) {
	bare := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: web, image: x}]}\n"
	l, err := load(context.Background(), []string{file(t, prodPolicy)}, []string{file(t, bare)}, "shop", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Subjects[0].GetNamespace(); got != "shop" {
		t.Errorf("a pod without a namespace is in %q, want the one given (shop)", got)
	}
	inShop := strings.Replace(bare, "{name: web}", "{name: web, namespace: shop}", 1)
	if _, err := load(context.Background(), []string{file(t, prodPolicy)}, []string{file(t, inShop)}, "shop", true, nil); err != nil {
		t.Errorf("a pod in the namespace given: %v", err)
	}
	_, err = load(context.Background(), []string{file(t, prodPolicy)}, []string{file(t, inShop)}, "prod", true, nil)
	if err == nil || !strings.Contains(err.Error(), `its namespace "shop" does not match the namespace "prod" given with -n`) {
		t.Errorf("a pod in another namespace than -n: %v", err)
	}
	// From the kubeconfig's context (not -n), an object's own namespace wins, as with kubectl.
	if _, err := load(context.Background(), []string{file(t, prodPolicy)}, []string{file(t, inShop)}, "prod", false, nil); err != nil {
		t.Errorf("a pod in another namespace than the context's: %v", err)
	}
}

func TestAPodNoPolicyCoversIsSaidSoNotAllowed(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: web, image: x}]}\n"
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: web, image: x}]}}}\n"
	for _, tc := range []struct {
		namespace string
		want      []string
	}{{"shop", []string{"prod"}}, {"kube-system", []string{}}} {
		l, err := load(context.Background(), []string{file(t, prodPolicy)}, []string{file(t, pod+"---\n"+deploy)}, tc.namespace, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := newOffline(l.Store, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Subjects {
			raw, err := s.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.covering(context.Background(), s, raw)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s in %s is covered by %v, want %v", s.GetKind(), tc.namespace, got, tc.want)
			}
		}
	}
	var out strings.Builder
	if err := printVerdicts(&out, "", []verdict{{Kind: "Pod", Namespace: "kube-system", Name: "web", Allowed: true, Policies: []string{}}}); err != nil {
		t.Fatal(err)
	}
	if want := "Pod kube-system/web: not covered by any policy\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}

func TestVerifyWithoutARecordIsUndecided(t *testing.T) {
	var out strings.Builder
	err := printVerified(&out, "reg/app:1", verdict{Allowed: true, Pod: &corev1.Pod{}})
	if err == nil || !strings.Contains(err.Error(), "wrote no record of it") {
		t.Errorf("an allow without a record: %v", err)
	}
	if strings.Contains(out.String(), "signed by") {
		t.Errorf("printed signers without a record:\n%s", out.String())
	}
}
