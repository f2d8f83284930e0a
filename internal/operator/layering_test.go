package operator

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Dependencies point down: cmd → controllers/webhooks → internal → api. A library under
// internal/ that imported a controller or a webhook would sit above what it serves.
func TestInternalImportsNeitherControllersNorWebhooks(t *testing.T) {
	const module = "github.com/fixity-dev/fixity/"
	checked := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, above := range []string{"controllers", "webhooks", "cmd"} {
				if p == module+above || strings.HasPrefix(p, module+above+"/") {
					t.Errorf("%s imports %s: internal/ must not import %s/", path, p, above)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("read only %d files under internal/", checked)
	}
}
