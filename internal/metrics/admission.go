package metrics

import (
	"context"
	"net/http"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Webhook serves h at path, counting its decisions (AdmissionDecisions) under that path, the
// label controller-runtime's own latency and request metrics use.
func Webhook(path string, h admission.Handler) *webhook.Admission {
	return &webhook.Admission{Handler: counted{webhook: path, Handler: h}}
}

type counted struct {
	webhook string
	admission.Handler
}

func (c counted) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp := c.Handler.Handle(ctx, req)
	if !ptr.Deref(req.DryRun, false) {
		AdmissionDecisions.WithLabelValues(c.webhook, Decision(resp)).Inc()
	}
	return resp
}

// Decision names an answer: denied (403, the webhooks' denials), errored (any other refusal: a
// request that could not be read or decided), warned (allowed with warnings), allowed.
func Decision(resp admission.Response) string {
	switch {
	case !resp.Allowed && resp.Result != nil && resp.Result.Code != 0 && resp.Result.Code != http.StatusForbidden:
		return DecisionErrored
	case !resp.Allowed:
		return DecisionDenied
	case len(resp.Warnings) > 0:
		return DecisionWarned
	}
	return DecisionAllowed
}
