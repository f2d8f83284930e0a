package webhookcerts

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Names of the webhook configurations as config/default installs them; the CA is injected into
// these and the operator may update no others (see the RBAC markers).
const (
	MutatingConfiguration   = "fixity-mutating-webhook-configuration"
	ValidatingConfiguration = "fixity-validating-webhook-configuration"
)

// The Secret is shipped empty by the install (the rotator only updates it), so the operator
// needs no right to create Secrets. Updating webhook configurations is limited to Fixity's own.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=update;patch,resourceNames=fixity-mutating-webhook-configuration;fixity-validating-webhook-configuration

// Options say where the certificate is kept and who it is for.
type Options struct {
	// Secret holds the CA and the serving certificate; it must exist (the install ships it).
	Secret types.NamespacedName
	// Service is the webhook Service's name, in Secret.Namespace: the certificate is issued for
	// <service>.<namespace>.svc, the name the API server connects to.
	Service string
	// CertDir is where the Secret is mounted; CertName and KeyName are its files.
	CertDir, CertName, KeyName string
}

// Add registers the certificate rotator with mgr. ready is closed once the certificate is
// mounted in CertDir and the CA is injected into both webhook configurations; the rotator
// runs on every replica, since each serves webhooks.
func Add(mgr ctrl.Manager, o Options, ready chan struct{}) error {
	if o.Secret.Namespace == "" || o.Secret.Name == "" || o.Service == "" {
		return fmt.Errorf("webhook certificate rotation needs a Secret (namespace and name) and a Service")
	}
	err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      o.Secret,
		CertDir:        o.CertDir,
		CertName:       o.CertName,
		KeyName:        o.KeyName,
		CAName:         "fixity-webhook-ca",
		CAOrganization: "fixity.dev",
		DNSName:        fmt.Sprintf("%s.%s.svc", o.Service, o.Secret.Namespace),
		ExtraDNSNames:  []string{fmt.Sprintf("%s.%s.svc.cluster.local", o.Service, o.Secret.Namespace)},
		IsReady:        ready,
		Webhooks: []rotator.WebhookInfo{
			{Name: MutatingConfiguration, Type: rotator.Mutating},
			{Name: ValidatingConfiguration, Type: rotator.Validating},
		},
		FieldOwner: "fixity",
		// The webhook server reloads the mounted files itself (certwatcher).
		RestartOnSecretRefresh: false,
		RequireLeaderElection:  false,
	})
	if err != nil {
		return fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	return nil
}

// Gate returns srv, starting only once ready is closed: before that there is no certificate to
// serve, and the readiness probe (srv's StartedChecker) keeps the replica out of the Service.
func Gate(srv webhook.Server, ready <-chan struct{}) webhook.Server {
	return &gated{Server: srv, ready: ready}
}

type gated struct {
	webhook.Server
	ready <-chan struct{}
}

func (g *gated) Start(ctx context.Context) error {
	select {
	case <-g.ready:
	case <-ctx.Done():
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Webhook certificate is ready; starting the webhook server")
	return g.Server.Start(ctx)
}
