package operator

import (
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/controllers/immutabilitypolicy"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/webhooks/podaccess"
	"github.com/fixity-dev/fixity/webhooks/pods"
	"github.com/fixity-dev/fixity/webhooks/workloads"
)

// NewScheme returns a scheme with the Kubernetes built-in kinds and Fixity's kinds.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(fixityv1.AddToScheme(s))
	return s
}

// Options are what the controllers and webhooks need to know about the running operator.
type Options struct {
	// Self is the operator's own identity, learned from the API server (SelfSubjectReview).
	Self authenticationv1.UserInfo
}

// Setup registers every controller and webhook with mgr.
func Setup(mgr ctrl.Manager, _ Options) error {
	if err := (&immutabilitypolicy.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ImmutabilityPolicy controller: %w", err)
	}
	matcher := &policy.Matcher{Reader: mgr.GetClient()}
	// Each admission concern contributes checks (and mutations) that the pod and workload
	// webhooks run for every matching policy.
	var (
		mutators []admit.Mutator
		checks   []admit.Check
	)
	pods.Register(mgr, matcher, mutators, checks)
	workloads.Register(mgr, matcher, checks)
	podaccess.Register(mgr, matcher)
	return nil
}
