package metrics

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

func TestDecision(t *testing.T) {
	for name, tc := range map[string]struct {
		resp admission.Response
		want string
	}{
		"allowed":             {admission.Allowed(""), DecisionAllowed},
		"allowed with a warn": {admission.Allowed("").WithWarnings("audit: [policy p] ..."), DecisionWarned},
		"denied":              {admission.Denied("[policy p] not pinned"), DecisionDenied},
		"bad request":         {admission.Errored(http.StatusBadRequest, context.Canceled), DecisionErrored},
		"internal error":      {admission.Errored(http.StatusInternalServerError, context.Canceled), DecisionErrored},
	} {
		t.Run(name, func(t *testing.T) {
			gomega.NewWithT(t).Expect(Decision(tc.resp)).To(gomega.Equal(tc.want))
		})
	}
}

type answer admission.Response

func (a answer) Handle(context.Context, admission.Request) admission.Response {
	return admission.Response(a)
}

func TestWebhookCountsRealDecisionsByPath(t *testing.T) {
	g := gomega.NewWithT(t)
	path := "/test-" + t.Name()
	hook := Webhook(path, answer(admission.Denied("no")))
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1"}}
	g.Expect(hook.Handle(context.Background(), req).Allowed).To(gomega.BeFalse())
	req.DryRun = ptr.To(true)
	hook.Handle(context.Background(), req)
	g.Expect(testutil.ToFloat64(AdmissionDecisions.WithLabelValues(path, DecisionDenied))).To(gomega.Equal(1.0), "the dry run is not counted")
}

func TestGrantsActiveCountsActiveGrantsByNamespace(t *testing.T) {
	g := gomega.NewWithT(t)
	grant := func(ns, name string, phase fixityv1.GrantPhase) *fixityv1.AccessGrant {
		return &fixityv1.AccessGrant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: fixityv1.AccessGrantStatus{Phase: phase}}
	}
	scheme := runtime.NewScheme()
	g.Expect(fixityv1.AddToScheme(scheme)).To(gomega.Succeed())
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		grant("shop", "a", fixityv1.GrantActive), grant("shop", "b", fixityv1.GrantActive),
		grant("shop", "c", fixityv1.GrantPending), grant("ops", "d", fixityv1.GrantActive),
	).Build()
	WatchGrants(c)
	t.Cleanup(func() { grantsActive.reader.Store(nil) })
	g.Expect(testutil.CollectAndCompare(grantsActive, strings.NewReader(`
# HELP fixity_grants_active AccessGrants in phase Active (someone may exec into, attach to or debug the pods they name), by namespace.
# TYPE fixity_grants_active gauge
fixity_grants_active{namespace="ops"} 1
fixity_grants_active{namespace="shop"} 2
`), GrantsActiveName)).To(gomega.Succeed())
}
