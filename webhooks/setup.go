package webhooks

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/webhooks/accessgrant"
	"github.com/fixity-dev/fixity/webhooks/podaccess"
	"github.com/fixity-dev/fixity/webhooks/pods"
	"github.com/fixity-dev/fixity/webhooks/policies"
	"github.com/fixity-dev/fixity/webhooks/workloads"
)

// Setup serves every admission webhook on mgr's webhook server.
func Setup(mgr ctrl.Manager, d *operator.Deps) error {
	pods.Register(mgr,
		&pods.Mutator{Matcher: d.Matcher, Mutators: d.Mutators},
		&pods.Validator{Matcher: d.Matcher, Guards: d.Guards, Checks: d.Checks, Access: d.Access},
		&pods.Metadata{Matcher: d.Matcher, Annotations: d.Annotations, Guards: d.Guards})
	workloads.Register(mgr, d.Matcher, d.Checks)
	podaccess.Register(mgr, d.Matcher, d.Access)
	accessgrant.Register(mgr, d.Matcher, d.Access.Finder, d.Self.Username)
	policies.Register(mgr)
	return nil
}
