package podaccess

import (
	"testing"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Kubelet paths are read as the kubelet's router would, whatever their spelling.
func TestKubeletTarget(t *testing.T) {
	for _, tc := range []struct {
		path, access, namespace, pod string
		err                          bool
	}{
		{"/exec/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"exec/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/exec/shop/web/0c1f/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/attach/shop/web/app", string(fixityv1.AccessAttach), "shop", "web", false},
		{"/run/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/checkpoint/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/portForward/shop/web", string(fixityv1.AccessPortForward), "shop", "web", false},
		{"/PORTFORWARD/shop/web", string(fixityv1.AccessPortForward), "shop", "web", false},
		{"//exec//shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/stats/../exec/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/%65xec/shop/web/app", string(fixityv1.AccessExec), "shop", "web", false},
		{"/exec/shop", "", "", "", true},
		{"/exec", "", "", "", true},
		{"/stats/summary", "", "", "", false},
		{"/containerLogs/shop/web/app", "", "", "", false},
		{"", "", "", "", false},
		{"/exec/%zz", "", "", "", true},
	} {
		access, ns, pod, err := KubeletTarget(tc.path)
		if (err != nil) != tc.err || string(access) != tc.access || ns != tc.namespace || pod != tc.pod {
			t.Errorf("KubeletTarget(%q) = %q, %q, %q, %v; want %q, %q, %q, error %v", tc.path, access, ns, pod, err, tc.access, tc.namespace, tc.pod, tc.err)
		}
	}
}
