package podaccess

import (
	"encoding/json"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/fixity-dev/fixity/test/builders"
)

// The pod access webhooks (pods/exec and friends, nodes/proxy) answer any AdmissionReview
// without panicking; nodes/proxy allows only a path it could read.
func FuzzPodAccessWebhooks(f *testing.F) {
	h, _, _, _, _ := grantedHandler(time.Now())
	readable := func(req admissionv1.AdmissionRequest) bool {
		if req.Resource.Resource != "nodes" {
			return true // exec, attach and port-forward are decided by the pod they name, not their options
		}
		var opts struct {
			Path string `json:"path"`
		}
		return json.Unmarshal(req.Object.Raw, &opts) == nil
	}
	connect := func(resource, name, sub, user, object string) admissionv1.AdmissionRequest {
		return admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Connect, Namespace: "shop", Name: name, SubResource: sub,
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: resource},
			UserInfo: authenticationv1.UserInfo{Username: user}, Object: runtime.RawExtension{Raw: []byte(object)},
		}
	}
	builders.FuzzWebhook(f, []admission.Handler{h, &NodeProxy{Handler: h}}, readable,
		connect("pods", "web", "exec", "alice", `{"kind":"PodExecOptions","apiVersion":"v1","command":["sh"]}`),
		connect("pods", "web", "portforward", "bob", `{"kind":"PodPortForwardOptions","apiVersion":"v1"}`),
		connect("nodes", "node-1", "proxy", "alice", `{"kind":"NodeProxyOptions","apiVersion":"v1","path":"/exec/shop/web/app"}`),
		connect("nodes", "node-1", "proxy", "bob", `{"kind":"NodeProxyOptions","apiVersion":"v1","path":"/stats/../attach/shop/web/app"}`),
	)
}
