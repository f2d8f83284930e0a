package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
