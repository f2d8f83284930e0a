package admit

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func policy(name string, mode fixityv1.PolicyMode) *fixityv1.ImmutabilityPolicy {
	return &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: fixityv1.ImmutabilityPolicySpec{Mode: mode}}
}

func TestResponse(t *testing.T) {
	prod, audit := policy("production", fixityv1.ModeEnforce), policy("audit", fixityv1.ModeAudit)

	resp := Response(nil)
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("no violations: want allowed without warnings, got %+v", resp)
	}

	resp = Response([]Violation{New(audit, "runtime.privileged", "web", "privileged is not allowed; remove securityContext.privileged")})
	if !resp.Allowed {
		t.Fatal("Audit violations must never deny")
	}
	if len(resp.Warnings) != 1 || resp.Warnings[0] != `audit: [policy audit] container "web": privileged is not allowed; remove securityContext.privileged` {
		t.Fatalf("warnings = %q", resp.Warnings)
	}

	resp = Response([]Violation{
		New(prod, "images.digest", "web", "image %q is not pinned by digest", "shop/web:1.4"),
		New(audit, "runtime.readOnlyRootFilesystem", "web", "root filesystem is writable"),
		New(prod, "runtime.hostNetwork", "", "hostNetwork is not allowed"),
	})
	if resp.Allowed {
		t.Fatal("an Enforce violation must deny")
	}
	msg := resp.Result.Message
	want := "[policy production] container \"web\": image \"shop/web:1.4\" is not pinned by digest\n[policy production] hostNetwork is not allowed"
	if msg != want {
		t.Fatalf("message =\n%s\nwant\n%s", msg, want)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "[policy audit]") {
		t.Fatalf("Audit violations still warn when Enforce ones deny; warnings = %q", resp.Warnings)
	}
}
