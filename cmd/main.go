// Command manager runs the Fixity operator: the admission webhooks and the controllers.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/controllers"
	"github.com/fixity-dev/fixity/internal/identity"
	"github.com/fixity-dev/fixity/internal/kubeletstats"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/remediation"
	"github.com/fixity-dev/fixity/internal/webhookcerts"
	"github.com/fixity-dev/fixity/webhooks"
)

// options are the manager's command-line flags.
type options struct {
	metricsAddr                                      string
	probeAddr                                        string
	secureMetrics, enableHTTP2, enableLeaderElection bool
	webhookPort                                      int
	webhookCertPath, webhookCertName, webhookCertKey string
	webhookCertSecret, webhookService                string
	metricsCertPath, metricsCertName, metricsCertKey string
	replacementTimeout                               time.Duration
	kubeAPIQPS                                       float64
	kubeAPIBurst                                     int
	kubeletCA                                        string
	kubeletInsecureTLS                               bool
	kubeletStatsPeriod                               time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&o.enableLeaderElection, "leader-elect", false, "Enable leader election for the controllers, "+
		"so that only one replica remediates at a time. Webhooks are served by every replica.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "The port the admission webhook server listens on.")
	flag.StringVar(&o.webhookCertPath, "webhook-cert-path", "", "The directory that contains the webhook certificate.")
	flag.StringVar(&o.webhookCertName, "webhook-cert-name", "tls.crt", "The name of the webhook certificate file.")
	flag.StringVar(&o.webhookCertKey, "webhook-cert-key", "tls.key", "The name of the webhook key file.")
	flag.StringVar(&o.webhookCertSecret, "webhook-cert-secret", "", "Provision the webhook certificate in-cluster: keep a CA "+
		"and a certificate in this Secret of the operator's namespace, inject the CA into Fixity's webhook configurations, "+
		"and serve the certificate once it is mounted at --webhook-cert-path (required with it). Empty: the certificate is provided.")
	flag.StringVar(&o.webhookService, "webhook-service", "fixity-webhook-service", "The Service the API server calls the "+
		"webhooks through, in the operator's namespace (the certificate's name with --webhook-cert-secret).")
	flag.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "The directory that contains the metrics server certificate.")
	flag.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&o.enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics and webhook servers "+
		"(off by default because of the HTTP/2 Stream Cancellation and Rapid Reset CVEs).")
	flag.DurationVar(&o.replacementTimeout, "replacement-timeout", remediation.DefaultReplacementTimeout, "How long an owner "+
		"(ReplicaSet, StatefulSet, DaemonSet, Job) may take to get back the Ready pods it had before one of its drifted pods was "+
		"replaced; after it the owner is reported ReplacementStuck and nothing more of it is replaced until it recovers.")
	// client-go's defaults (20/30, as ctrl.GetConfig sets them) serialise a node drain or a
	// fleet of drifted nodes behind the client's own rate limiter; the API server's priority and
	// fairness still protects it.
	flag.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 100, "Queries per second the manager may send to the API server.")
	flag.IntVar(&o.kubeAPIBurst, "kube-api-burst", 200, "Burst of queries the manager may send to the API server.")
	flag.StringVar(&o.kubeletCA, "kubelet-certificate-authority", "", "CA file the kubelets' serving certificates are "+
		"verified against when their stats are read (the WritableLayer drift check); empty: the API server's CA, right where "+
		"kubelets get serving certificates from the cluster CA (serverTLSBootstrap).")
	flag.BoolVar(&o.kubeletInsecureTLS, "kubelet-insecure-tls", false, "Do not verify the kubelets' serving certificates. "+
		"The manager's credentials then go to whatever address a node reports: for test clusters only.")
	flag.DurationVar(&o.kubeletStatsPeriod, "kubelet-stats-period", kubeletstats.DefaultPeriod, "How often each node "+
		"running pods under a policy with the WritableLayer check is read (one request per node per period).")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst

	// Who we are is asked of the API server, not configured, so that the "only the operator
	// writes fixity.dev/* annotations" rule cannot be pointed at someone else by a flag.
	idCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	self, err := identity.Self(idCtx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("learning the operator's identity: %w", err)
	}
	log.Info("Running as", "user", self.Username, "groups", self.Groups)

	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}

	webhookOpts := webhook.Options{Port: o.webhookPort, TLSOpts: tlsOpts}
	var watchers []*certwatcher.CertWatcher
	var certsReady chan struct{}
	if o.webhookCertSecret != "" {
		// The certificate does not exist yet: the server loads it from CertDir once the rotator
		// reports it mounted.
		if o.webhookCertPath == "" {
			return fmt.Errorf("--webhook-cert-secret needs --webhook-cert-path, the directory the Secret is mounted in")
		}
		certsReady = make(chan struct{})
		webhookOpts.CertDir, webhookOpts.CertName, webhookOpts.KeyName = o.webhookCertPath, o.webhookCertName, o.webhookCertKey
	} else if o.webhookCertPath != "" {
		w, err := certwatcher.New(filepath.Join(o.webhookCertPath, o.webhookCertName), filepath.Join(o.webhookCertPath, o.webhookCertKey))
		if err != nil {
			return fmt.Errorf("loading webhook certificate from %s: %w", o.webhookCertPath, err)
		}
		watchers = append(watchers, w)
		webhookOpts.TLSOpts = append(webhookOpts.TLSOpts, func(c *tls.Config) { c.GetCertificate = w.GetCertificate })
	}
	webhookServer := webhook.NewServer(webhookOpts)
	if certsReady != nil {
		webhookServer = webhookcerts.Gate(webhookServer, certsReady)
	}

	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics, TLSOpts: tlsOpts}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if o.metricsCertPath != "" {
		w, err := certwatcher.New(filepath.Join(o.metricsCertPath, o.metricsCertName), filepath.Join(o.metricsCertPath, o.metricsCertKey))
		if err != nil {
			return fmt.Errorf("loading metrics certificate from %s: %w", o.metricsCertPath, err)
		}
		watchers = append(watchers, w)
		metricsOpts.TLSOpts = append(metricsOpts.TLSOpts, func(c *tls.Config) { c.GetCertificate = w.GetCertificate })
	}

	opts := operator.Options{Self: self, Namespace: operatorNamespace(), ReplacementTimeout: o.replacementTimeout,
		KubeletCAFile: o.kubeletCA, KubeletInsecureTLS: o.kubeletInsecureTLS, KubeletStatsPeriod: o.kubeletStatsPeriod}
	mgrOpts := operator.ManagerOptions(opts)
	mgrOpts.Metrics, mgrOpts.WebhookServer = metricsOpts, webhookServer
	mgrOpts.HealthProbeBindAddress, mgrOpts.LeaderElection = o.probeAddr, o.enableLeaderElection
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	for _, w := range watchers {
		if err := mgr.Add(w); err != nil {
			return fmt.Errorf("adding certificate watcher: %w", err)
		}
	}

	if certsReady != nil {
		err := webhookcerts.Add(mgr, webhookcerts.Options{
			Secret:  types.NamespacedName{Namespace: operatorNamespace(), Name: o.webhookCertSecret},
			Service: o.webhookService,
			CertDir: o.webhookCertPath, CertName: o.webhookCertName, KeyName: o.webhookCertKey,
		}, certsReady)
		if err != nil {
			return err
		}
	}

	deps, err := operator.NewDeps(mgr, opts)
	if err != nil {
		return err
	}
	if err := controllers.Setup(mgr, deps); err != nil {
		return err
	}
	if err := webhooks.Setup(mgr, deps); err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	// Ready only once the webhook server listens, so that no replica takes admission traffic it
	// cannot answer.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}

	log.Info("Starting manager", "webhookPort", o.webhookPort)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// operatorNamespace is the pod's namespace in a cluster, and fixity-system when the manager runs
// outside one (the demo), where controller-runtime could not detect it.
func operatorNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return fixityv1.OperatorNamespace
}
