package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/grants"
	"github.com/fixity-dev/fixity/internal/images"
	"github.com/fixity-dev/fixity/internal/kubeletstats"
	"github.com/fixity-dev/fixity/internal/lockdown"
	"github.com/fixity-dev/fixity/internal/metrics"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/podconfig"
	"github.com/fixity-dev/fixity/internal/policy"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// NewScheme returns a scheme with the Kubernetes built-in kinds and Fixity's kinds.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(fixityv1.AddToScheme(s))
	utilruntime.Must(openreports.Install(s))
	return s
}

// Options configure the running operator.
type Options struct {
	// Self is the operator's own identity, learned from the API server (SelfSubjectReview).
	Self authenticationv1.UserInfo
	// Namespace is the operator's own namespace; empty means fixity-system. It is exempt from
	// every policy and holds the operator's records (saved pod specs, the replacement ledger,
	// the leader lease).
	Namespace string
	// ReplacementTimeout is how long an owner may take to recover from a replacement before
	// it is reported stuck; 0 means remediation.DefaultReplacementTimeout.
	ReplacementTimeout time.Duration
	// Clock is the operator's clock; nil means the real one.
	Clock clock.Clock
	// KubeletCAFile, KubeletInsecureTLS and KubeletStatsPeriod configure the reads of the
	// kubelets' stats (WritableLayer): see kubeletstats.NewClient and Poller.
	KubeletCAFile      string
	KubeletInsecureTLS bool
	KubeletStatsPeriod time.Duration
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = fixityv1.OperatorNamespace
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
}

// ManagerOptions are the manager options every caller shares: the scheme, the lean cache, and
// leader election in the operator's namespace. Callers add servers (metrics, webhook, probes).
func ManagerOptions(o Options) ctrl.Options {
	o.defaults()
	return ctrl.Options{
		Scheme: NewScheme(),
		// The operator watches every pod: keep only what it reads.
		Cache:                   CacheOptions(o.Namespace),
		LeaderElectionID:        "manager.fixity.dev",
		LeaderElectionNamespace: o.Namespace,
		// Release the lease on shutdown so that a rolling update hands over at once.
		LeaderElectionReleaseOnCancel: true,
	}
}

// Deps are the pieces the controllers and webhooks share: one matcher, one image verifier with
// its caches, one drift tracker between the drift and policy controllers.
type Deps struct {
	Options
	Events  recorder.EventRecorder
	Matcher *policy.Matcher
	// Images are the image rules (resolve, allowedRegistries, signatures) with their caches.
	Images   *images.Images
	Registry *images.Registry
	Versions *admitted.Versions
	// Mutators, Checks and Guards are what the pod and workload webhooks run; drift runs Checks
	// on pods it did not admit and on the replacements of drifted pods.
	Mutators []admit.Mutator
	Checks   []admit.Check
	// SpecChecks are the Checks that judge a running pod's spec alone (no registry): reports
	// run them on every pod.
	SpecChecks  []admit.Check
	Guards      []admit.Guard
	Annotations *lockdown.AnnotationGuard
	Access      *lockdown.Access
	Detector    *drift.Detector
	// Tracker holds what drift detection found per pod; DriftChanged names the policies whose
	// counts changed, to wake the policy controller.
	Tracker      *drift.Tracker
	DriftChanged chan event.GenericEvent
	// PodReports carries the pods whose findings changed, to keep their namespace's report.
	PodReports chan event.GenericEvent
	Census     *remediation.Census[types.NamespacedName]
	Ledger     *remediation.Ledger
	// AccessReview is the latest review of who can reach pods past Fixity.
	AccessReview *accessreview.Store
	// NodeTracker and NodeCensus are node drift's verdicts and its breakers' census.
	NodeTracker *nodedrift.Tracker
	NodeCensus  *remediation.Census[string]
	// Config reads ConfigMaps and Secrets as hashes of their data (config.mutable); ConfigCache
	// is its cache, which drift watches for changes.
	Config      *podconfig.Store
	ConfigCache cache.Cache
	// Stats reads the kubelets' stats for WritableLayer; StatsChanged names the pods whose
	// figures changed, to wake the drift controller. controllers.Setup says which nodes to read
	// and runs it.
	Stats        *kubeletstats.Poller
	StatsChanged chan event.GenericEvent
}

// everyReplica runs a cache on every replica, not only the leader: the webhooks of a standby
// read it, and its readiness waits for it. (A bare cache.Cache added to the manager is taken for
// a leader's runnable.)
type everyReplica struct{ cache.Cache }

func (everyReplica) NeedLeaderElection() bool { return false }

// keyTimeout bounds reading (or making) the config hash key at start.
const keyTimeout = 30 * time.Second

// newConfigStore reads the config hash key, making it on first start, and adds to mgr the
// cluster-wide cache of ConfigMaps and Secrets (hashes, never data), ready once it has synced.
func newConfigStore(mgr ctrl.Manager, namespace string) (*podconfig.Store, cache.Cache, error) {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, nil, fmt.Errorf("creating a client for the config hash key: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
	defer cancel()
	key, err := podconfig.EnsureKey(ctx, c, namespace)
	if err != nil {
		return nil, nil, err
	}
	cc, err := podconfig.NewCache(mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper(), key)
	if err != nil {
		return nil, nil, err
	}
	if _, err := cc.GetInformer(ctx, &corev1.ConfigMap{}); err != nil {
		return nil, nil, fmt.Errorf("watching ConfigMaps: %w", err)
	}
	if _, err := cc.GetInformer(ctx, &corev1.Secret{}); err != nil {
		return nil, nil, fmt.Errorf("watching Secrets: %w", err)
	}
	// Every replica holds the key: any of them puts its Secret back if it is gone.
	keeper := &podconfig.KeyKeeper{Client: c, Namespace: namespace, Key: key, Cache: cc, Log: mgr.GetLogger().WithName("config-key")}
	if err := mgr.Add(keeper); err != nil {
		return nil, nil, fmt.Errorf("adding the config hash key's keeper: %w", err)
	}
	if err := mgr.Add(everyReplica{cc}); err != nil {
		return nil, nil, fmt.Errorf("adding the ConfigMap and Secret cache: %w", err)
	}
	// The webhooks read it: a replica takes admission traffic once it has every object.
	if err := mgr.AddReadyzCheck("config-cache", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !cc.WaitForCacheSync(ctx) {
			return errors.New("the ConfigMap and Secret cache has not synced yet")
		}
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("adding the config cache's readiness check: %w", err)
	}
	return &podconfig.Store{Key: key, Cache: cc, Live: mgr.GetAPIReader()}, cc, nil
}

// NewDeps builds the shared dependencies for mgr.
func NewDeps(mgr ctrl.Manager, o Options) (*Deps, error) {
	o.defaults()
	d := &Deps{
		Options: o, Events: mgr.GetEventRecorder("fixity"), Census: &remediation.Census[types.NamespacedName]{},
		NodeTracker: &nodedrift.Tracker{}, NodeCensus: &remediation.Census[string]{},
		AccessReview: &accessreview.Store{},
	}
	d.Matcher = &policy.Matcher{Reader: mgr.GetClient(), OperatorNamespace: o.Namespace}

	// Drift counts flow to the policies' status through the tracker, replacement counts through
	// the ledger's ConfigMaps; the channel wakes the policy controller, the status's only writer.
	d.Tracker = drift.NewTracker()
	d.DriftChanged = make(chan event.GenericEvent, 1024)
	d.Tracker.OnChange = func(policies []string) {
		for _, name := range policies {
			select {
			case d.DriftChanged <- event.GenericEvent{Object: &fixityv1.ImmutabilityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
			default: // full: the policy controller's periodic resync catches up
			}
		}
	}
	d.PodReports = make(chan event.GenericEvent, 1024)
	d.Tracker.OnPod = func(pod types.NamespacedName) {
		select {
		case d.PodReports <- event.GenericEvent{Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}}:
		default: // full: the namespace's next change rewrites its whole report
		}
	}
	// The policy controller watches the ledger's counts: it publishes them once its cache has them.
	d.Ledger = &remediation.Ledger{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: o.Namespace}

	d.Access = &lockdown.Access{
		Finder:   &grants.Finder{Reader: mgr.GetClient(), Matcher: d.Matcher, Clock: o.Clock},
		Recorder: &grants.Recorder{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Events: d.Events, Clock: o.Clock},
	}
	metrics.WatchGrants(mgr.GetClient())
	clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("creating a clientset for registry credentials: %w", err)
	}
	d.Versions = &admitted.Versions{Server: clientset.Discovery(), Clock: o.Clock}
	d.Registry = &images.Registry{}
	d.Images = &images.Images{
		Registry:    d.Registry,
		Verifier:    &images.Verifier{Registry: d.Registry},
		Authorities: &images.Authorities{Reader: mgr.GetAPIReader()},
		Keychains:   &images.Keychains{Client: clientset},
		Pins:        images.NewPins(mgr.GetClient(), mgr.GetAPIReader()),
		Versions:    d.Versions,
	}

	if d.Config, d.ConfigCache, err = newConfigStore(mgr, o.Namespace); err != nil {
		return nil, err
	}
	chain, err := NewAdmission(o.Self.Username, d.Matcher, d.Images, d.Config)
	if err != nil {
		return nil, err
	}
	d.Mutators, d.Checks, d.SpecChecks, d.Guards, d.Annotations = chain.Mutators, chain.Checks, chain.SpecChecks, chain.Guards, chain.Annotations
	d.Detector = drift.NewDetector(mgr.GetClient(), d.Images, d.Checks, d.Registry, d.Images.Keychains)
	d.Detector.Versions, d.Detector.Clock, d.Detector.Grants = d.Versions, o.Clock, d.Access.Finder
	d.Detector.Config = d.Config
	kubelets, err := kubeletstats.NewClient(mgr.GetConfig(), o.KubeletCAFile, o.KubeletInsecureTLS, kubeletstats.DefaultTimeout)
	if err != nil {
		return nil, err
	}
	d.StatsChanged = make(chan event.GenericEvent, 1024)
	d.Stats = &kubeletstats.Poller{Client: kubelets, Period: o.KubeletStatsPeriod, Changed: func(_ string, pods []types.NamespacedName) {
		for _, p := range pods {
			d.StatsChanged <- event.GenericEvent{Object: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}}
		}
	}}
	d.Detector.Stats = d.Stats
	return d, nil
}

// Admission is what the pod and workload webhooks run for every matching policy: the same
// chain serves the operator and `kubectl fixity test`, so both give the same answers.
type Admission struct {
	Mutators []admit.Mutator
	Checks   []admit.Check
	// SpecChecks are those of Checks that judge a pod's spec alone, with no registry.
	SpecChecks  []admit.Check
	Guards      []admit.Guard
	Annotations *lockdown.AnnotationGuard
}

// NewAdmission builds the admission chain of an operator whose identity is self. Each
// admission concern contributes checks (and mutations). The annotation guard mutates first: it
// drops user-written fixity.dev/* annotations before the operator's own are added;
// config.mutable records the pod's ConfigMaps and Secrets next; the image rules mutate last, so
// the spec-hash they record is of the pod as admitted.
func NewAdmission(self string, m *policy.Matcher, img *images.Images, config *podconfig.Store) (Admission, error) {
	podSecurity, err := lockdown.NewPodSecurity()
	if err != nil {
		return Admission{}, err
	}
	annotations := &lockdown.AnnotationGuard{Operator: self}
	rules := &podconfig.Rules{Store: config}
	return Admission{
		Mutators:   []admit.Mutator{annotations, rules, img},
		Checks:     []admit.Check{podSecurity, &lockdown.InPlace{Operator: self}, img, rules},
		SpecChecks: []admit.Check{podSecurity, rules},
		// Guards hold whatever the policies say, on pod updates and on status updates alike.
		Guards:      []admit.Guard{annotations, &lockdown.LabelGuard{Matcher: m, Operator: self}},
		Annotations: annotations,
	}, nil
}
