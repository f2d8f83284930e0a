package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Object is one object read from a file.
type Object struct {
	*unstructured.Unstructured
	// Source names where it was read: "path (document N)".
	Source string
}

// String names the object for messages: "Kind namespace/name (source)".
func (o Object) String() string {
	n := o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		n = ns + "/" + n
	}
	return fmt.Sprintf("%s %s (%s)", o.GetKind(), n, o.Source)
}

// maxFileBytes bounds one file: a manifest is never this large, and a mistaken path (a disk
// image) must not be read into memory.
const maxFileBytes = 64 << 20

// capped reads at most left bytes of r, then fails: a file cut at the limit would lose the
// documents after it without a word.
type capped struct {
	r    io.Reader
	left int64
	name string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		if n, _ := c.r.Read(make([]byte, 1)); n == 0 {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("%s is larger than %d MiB", c.name, maxFileBytes>>20)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// Read reads every object in paths: files, directories (their .yaml, .yml and .json files,
// recursively) and "-" for stdin. Empty documents are skipped; a document without apiVersion,
// kind or name is an error naming the file and document.
func Read(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			objs, err := decode("stdin", &capped{r: stdin, left: maxFileBytes, name: "stdin"})
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			objs, err := readFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading manifests in %s: %w", p, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("reading manifests: %s has no .yaml, .yml or .json file", p)
	}
	return files, nil
}

func readFile(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	defer func() { _ = f.Close() }()
	return decode(path, &capped{r: f, left: maxFileBytes, name: path})
}

// decode reads the YAML or JSON documents of one file.
func decode(source string, r io.Reader) ([]Object, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var out []Object
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s (document %d): %w", source, doc, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue // only comments
		}
		// As the API server reads a request: integers stay int64, which CEL rules compare.
		var m map[string]any
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", source, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		where := fmt.Sprintf("%s (document %d)", source, doc)
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for i := range list.Items {
				o := Object{Unstructured: &list.Items[i], Source: fmt.Sprintf("%s, item %d", where, i)}
				if err := named(o); err != nil {
					return nil, err
				}
				out = append(out, o)
			}
			continue
		}
		o := Object{Unstructured: u, Source: where}
		if err := named(o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
}

func named(o Object) error {
	var missing []string
	if o.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if o.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if o.GetName() == "" && o.GetGenerateName() == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: the object has no %s", o.Source, strings.Join(missing, ", "))
	}
	return nil
}
