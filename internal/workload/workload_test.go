package workload

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodTemplate(t *testing.T) {
	cases := map[string]struct {
		gk    metav1.GroupKind
		raw   string
		image string
	}{
		"deployment":  {Kinds[0], `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"d"}]}}}}`, "d"},
		"statefulset": {Kinds[1], `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"s"}]}}}}`, "s"},
		"daemonset":   {Kinds[2], `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"ds"}]}}}}`, "ds"},
		"replicaset":  {Kinds[3], `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"r"}]}}}}`, "r"},
		"job":         {Kinds[4], `{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"j"}]}}}}`, "j"},
		"cronjob":     {Kinds[5], `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"c"}]}}}}}}`, "c"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tpl, err := PodTemplate(tc.gk, []byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Spec.Containers[0].Image; got != tc.image {
				t.Fatalf("image = %q, want %q", got, tc.image)
			}
		})
	}
}

func TestPodTemplateRejectsBadInput(t *testing.T) {
	if _, err := PodTemplate(metav1.GroupKind{Group: "apps", Kind: "Frobnicator"}, []byte(`{}`)); err == nil {
		t.Fatal("unknown kind: expected an error")
	}
	if _, err := PodTemplate(Kinds[0], []byte(`{"spec":`)); err == nil {
		t.Fatal("truncated JSON: expected an error")
	}
}
