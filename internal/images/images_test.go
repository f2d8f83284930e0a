package images

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		image    string
		prefixes []string
		want     bool
	}{
		{"ghcr.io/acme/app:1", nil, true},
		{"ghcr.io/acme/app:1", []string{"ghcr.io/acme/"}, true},
		{"ghcr.io/acme/app:1", []string{"ghcr.io/acme"}, true},
		{"ghcr.io/acme-evil/app:1", []string{"ghcr.io/acme"}, false},
		{"ghcr.io/acme", []string{"ghcr.io/acme"}, true},
		{"ghcr.io/other/app@sha256:" + strings.Repeat("a", 64), []string{"ghcr.io/acme/"}, false},
		{"nginx:1.27", []string{"docker.io/library/"}, true},
		{"nginx:1.27", []string{"index.docker.io/library/nginx"}, true},
		{"nginx:1.27", []string{"ghcr.io/"}, false},
		{"127.0.0.1:5001/shop/web:1.0", []string{"127.0.0.1:5001/shop/"}, true},
		{"127.0.0.1:5001/shop/web:1.0", []string{"127.0.0.1:5001/shopping/"}, false},
	} {
		ref, err := Parse(tc.image)
		if err != nil {
			t.Fatal(err)
		}
		if got := Allowed(tc.image, ref, tc.prefixes); got != tc.want {
			t.Errorf("Allowed(%q, %q) = %t, want %t", tc.image, tc.prefixes, got, tc.want)
		}
	}
}

func TestParseRejectsBadReferences(t *testing.T) {
	for _, image := range []string{"", "  ", "Shop/Web:1", "web:::1", "web@sha256:short"} {
		if _, err := Parse(image); err == nil {
			t.Errorf("Parse(%q) succeeded", image)
		} else if strings.TrimSpace(image) != "" && !strings.Contains(err.Error(), "is not a valid image reference") {
			t.Errorf("Parse(%q): %v", image, err)
		}
	}
}

func TestPinnedAsKeepsTheImageAsWritten(t *testing.T) {
	d, err := name.NewDigest("index.docker.io/library/nginx@sha256:" + strings.Repeat("b", 64))
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string]string{
		"nginx:1.27":                  "nginx@sha256:" + strings.Repeat("b", 64),
		"127.0.0.1:5001/shop/web:1.0": "127.0.0.1:5001/shop/web@sha256:" + strings.Repeat("b", 64),
		"127.0.0.1:5001/shop/web":     "127.0.0.1:5001/shop/web@sha256:" + strings.Repeat("b", 64),
	} {
		if got := pinnedAs(image, d); got != want {
			t.Errorf("pinnedAs(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestOriginalImageKeyFitsAnAnnotationName(t *testing.T) {
	short := originalImageKey("web")
	if short != "fixity.dev/original-image.web" {
		t.Errorf("key = %q", short)
	}
	long1, long2 := originalImageKey(strings.Repeat("a", 63)), originalImageKey(strings.Repeat("a", 62)+"b")
	for _, k := range []string{long1, long2} {
		if n := len(strings.TrimPrefix(k, fixityv1.Prefix)); n > 63 {
			t.Errorf("%q: name part is %d characters", k, n)
		}
	}
	if long1 == long2 {
		t.Error("two long container names share a key")
	}
}

// hostileRegistry serves the signature manifest of every image with body.
func hostileRegistry(t *testing.T, header http.Header, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

const testKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM
5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==
-----END PUBLIC KEY-----`

func TestVerifyFailsClearlyOnHostileRegistries(t *testing.T) {
	ctx := context.Background()
	p := &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u", Generation: 1}}
	p.Spec.Images.Verify = &fixityv1.VerifyRules{Threshold: 1, Authorities: []fixityv1.Authority{{Name: "k", Key: &fixityv1.KeyAuthority{PublicKey: testKey}}}}
	authorities, err := (&Authorities{}).Compile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	oci := http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}
	for _, tc := range []struct {
		name, body, want string
		limit            int64
	}{
		{"huge manifest", strings.Repeat(" ", 2048), "over the 1024 byte limit", 1024},
		{"malformed manifest", "{this is not json", "fetching signatures: registry 127.0.0.1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := hostileRegistry(t, oci, tc.body)
			d, err := name.NewDigest(host + "/shop/web@sha256:" + strings.Repeat("c", 64))
			if err != nil {
				t.Fatal(err)
			}
			v := &Verifier{Registry: &Registry{MaxResponseBytes: tc.limit}}
			_, err = v.Verify(ctx, d, "scope", authorities, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
