package operator

import (
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/controllers/accessgrant"
	driftcontroller "github.com/fixity-dev/fixity/controllers/drift"
	"github.com/fixity-dev/fixity/controllers/immutabilitypolicy"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/policy"
	accessgrantwebhook "github.com/fixity-dev/fixity/webhooks/accessgrant"
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
	// Namespace is the operator's own namespace; empty means fixity-system.
	Namespace string
}

// Setup registers every controller and webhook with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.Namespace == "" {
		o.Namespace = fixityv1.OperatorNamespace
	}
	// Drift counts flow from the drift controller to the policies' status through the tracker;
	// the channel wakes the policy controller when they change.
	tracker := drift.NewTracker()
	driftChanged := make(chan event.GenericEvent, 1024)
	tracker.OnChange = func(policies []string) {
		for _, name := range policies {
			select {
			case driftChanged <- event.GenericEvent{Object: &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
			default: // full: the policy controller's periodic resync catches up
			}
		}
	}
	if err := (&immutabilitypolicy.Reconciler{Client: mgr.GetClient(), Drift: tracker, DriftChanged: driftChanged}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ImmutabilityPolicy controller: %w", err)
	}
	events := mgr.GetEventRecorder("fixity")
	if err := (&accessgrant.Reconciler{Client: mgr.GetClient(), Events: events}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the AccessGrant controller: %w", err)
	}

	matcher := &policy.Matcher{Reader: mgr.GetClient()}
	podSecurity, err := lockdown.NewPodSecurity()
	if err != nil {
		return err
	}
	access := &lockdown.Access{
		Finder:   &grants.Finder{Reader: mgr.GetClient()},
		Recorder: &grants.Recorder{Client: mgr.GetClient(), Events: events},
	}
	annotations := &lockdown.AnnotationGuard{Operator: o.Self.Username}
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("creating a clientset for registry credentials: %w", err)
	}
	registry := &images.Registry{}
	imageRules := &images.Images{
		Registry:    registry,
		Verifier:    &images.Verifier{Registry: registry},
		Authorities: &images.Authorities{Reader: mgr.GetAPIReader()},
		Keychains:   &images.Keychains{Client: clientset},
		Pins:        images.NewPins(mgr.GetClient(), mgr.GetAPIReader()),
	}

	// Each admission concern contributes checks (and mutations) that the pod and workload
	// webhooks run for every matching policy. The annotation guard mutates first: it drops
	// user-written fixity.dev/* annotations before the operator's own are added; the image
	// rules mutate last, so the spec-hash they record is of the pod as admitted.
	var (
		mutators = []admit.Mutator{annotations, imageRules}
		checks   = []admit.Check{podSecurity, imageRules}
		// Guards hold whatever the policies say, on pod updates and on status updates alike.
		guards = []admit.Guard{annotations, &lockdown.LabelGuard{Matcher: matcher, Operator: o.Self.Username}}
	)
	pods.Register(mgr,
		&pods.Mutator{Matcher: matcher, Mutators: mutators},
		&pods.Validator{Matcher: matcher, Guards: guards, Checks: checks, Access: access},
		&pods.Metadata{Matcher: matcher, Annotations: annotations, Guards: guards})
	workloads.Register(mgr, matcher, checks)

	keychains := imageRules.Keychains
	detector := drift.NewDetector(mgr.GetClient(), imageRules, checks, registry, keychains)
	if err := (&driftcontroller.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Matcher: matcher,
		Detector: detector, Tracker: tracker, Events: events, Namespace: o.Namespace,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the drift controller: %w", err)
	}
	podaccess.Register(mgr, matcher, access)
	accessgrantwebhook.Register(mgr, matcher, o.Self.Username)
	return nil
}
