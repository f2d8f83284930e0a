package manifests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fixity-dev/fixity/config/crd"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadFilesDirectoriesListsAndStdin(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "---\napiVersion: v1\nkind: Pod\nmetadata: {name: one}\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n")
	write(t, dir, "sub/b.json", `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"three"}}]}`)
	write(t, dir, "README.md", "not a manifest")
	objs, err := Read([]string{dir, "-"}, strings.NewReader("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: four}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if want := "Pod/one ConfigMap/two Secret/three Deployment/four"; strings.Join(got, " ") != want {
		t.Errorf("read %v, want %s", got, want)
	}
	if !strings.Contains(objs[2].Source, "b.json (document 1), item 0") || objs[1].Source != filepath.Join(dir, "a.yaml")+" (document 3)" {
		t.Errorf("sources %q, %q", objs[1].Source, objs[2].Source)
	}
}

func TestReadErrorsNameTheFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "nokind.yaml (document 1): the object has no kind"},
		{"noname.yaml", "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\nmetadata: {}\n", "noname.yaml (document 1): the object has no metadata.name"},
		{"broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n---\nkind: [\n", "broken.yaml (document 2)"},
	} {
		_, err := Read([]string{write(t, dir, tc.name, tc.content)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	if _, err := Read([]string{filepath.Join(dir, "missing.yaml")}, nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Read([]string{empty}, nil); err == nil || !strings.Contains(err.Error(), "has no .yaml, .yml or .json file") {
		t.Errorf("an empty directory: %v", err)
	}
}

// The CRD's defaults, unknown fields, enums and CEL rules, as the API server applies them.
func TestAdmitAppliesTheCRDAsTheAPIServerDoes(t *testing.T) {
	schemas, err := LoadSchemas(crd.Bases)
	if err != nil {
		t.Fatal(err)
	}
	policy := func(spec string) Object {
		t.Helper()
		objs, err := Read([]string{write(t, t.TempDir(), "p.yaml", "apiVersion: fixity.dev/v1alpha1\nkind: ImmutabilityPolicy\nmetadata: {name: prod}\nspec:\n"+spec)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return objs[0]
	}
	ctx := context.Background()

	ok := policy("  images:\n    verify:\n      threshold: 1\n      authorities: [{name: release, key: {publicKey: \"-----BEGIN PUBLIC KEY-----\\n\"}}]\n")
	if err := schemas.Admit(ctx, ok); err != nil {
		t.Fatalf("a valid policy (an integer compared by a CEL rule): %v", err)
	}
	spec := ok.Object["spec"].(map[string]any)
	if spec["mode"] != "Enforce" || spec["images"].(map[string]any)["digest"] != "Resolve" {
		t.Errorf("defaults not applied: %v", spec)
	}

	for _, tc := range []struct{ spec, want string }{
		{"  mode: Sometimes\n", `spec.mode: Unsupported value: "Sometimes"`},
		{"  modes: Enforce\n", `unknown field "spec.modes"`},
		{"  images:\n    verify:\n      threshold: 2\n      authorities: [{name: release, key: {publicKey: \"-----BEGIN PUBLIC KEY-----\\n\"}}]\n", "threshold must not exceed the number of authorities"},
	} {
		err := schemas.Admit(ctx, policy(tc.spec))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ImmutabilityPolicy prod") {
			t.Errorf("%q: error %v, want it to name the policy and say %q", tc.spec, err, tc.want)
		}
	}

	pod := Object{Unstructured: policy("").Unstructured, Source: "x"}
	pod.SetAPIVersion("v1")
	pod.SetKind("Pod")
	if schemas.Has(pod) || schemas.Admit(ctx, pod) != nil {
		t.Error("a kind without a CRD is left alone")
	}
}

func TestAFileOverTheLimitIsAnErrorNotCutShort(t *testing.T) {
	doc := "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: two}\n"
	if _, err := decode("big.yaml", &capped{r: strings.NewReader(doc), left: int64(len(doc) - 10), name: "big.yaml"}); err == nil ||
		!strings.Contains(err.Error(), "big.yaml is larger than 64 MiB") {
		t.Errorf("a file over the limit: %v", err)
	}
	objs, err := decode("fits.yaml", &capped{r: strings.NewReader(doc), left: int64(len(doc)), name: "fits.yaml"})
	if err != nil || len(objs) != 2 {
		t.Errorf("a file exactly at the limit: %d objects, %v", len(objs), err)
	}
}
