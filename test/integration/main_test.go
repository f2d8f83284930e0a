package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/controllers"
	"github.com/fixity-dev/fixity/internal/identity"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/test/cluster"
	"github.com/fixity-dev/fixity/test/registry"
	"github.com/fixity-dev/fixity/webhooks"
)

var (
	env *cluster.Cluster
	// k8s talks to the API server directly (no cache), as a user would.
	k8s client.Client
	// reg is the loopback OCI registry the images of the tests live in.
	reg *registry.Registry
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := cluster.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err = cluster.StartControlPlane(cluster.Options{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")},
		WebhookPaths:      []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if reg, err = registry.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the registry:", err)
		return 1
	}
	defer func() { _ = reg.Close() }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startOperator(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting the operator:", err)
		return 1
	}
	return m.Run()
}

// startOperator runs the manager as cmd/main.go does, with its webhook server where envtest
// registered the webhooks.
func startOperator(ctx context.Context) error {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	var err error
	if k8s, err = client.New(env.Config, client.Options{Scheme: operator.NewScheme()}); err != nil {
		return err
	}
	self, err := identity.Self(ctx, env.Config)
	if err != nil {
		return err
	}
	// The operator's namespace holds its records, the config hash key among them.
	if err := env.CreateNamespace(ctx, fixityv1.OperatorNamespace); err != nil {
		return err
	}
	opts := operator.Options{Self: self}
	mgrOpts := operator.ManagerOptions(opts)
	mgrOpts.Metrics, mgrOpts.HealthProbeBindAddress = metricsserver.Options{BindAddress: "0"}, "0"
	mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{
		Host:    env.Webhook.LocalServingHost,
		Port:    env.Webhook.LocalServingPort,
		CertDir: env.Webhook.LocalServingCertDir,
	})
	mgr, err := ctrl.NewManager(env.Config, mgrOpts)
	if err != nil {
		return err
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
	mgr.GetWebhookServer().Register(sidecarPath, &webhook.Admission{Handler: sidecarInjector{}})
	mgr.GetWebhookServer().Register(tagRestorerPath, &webhook.Admission{Handler: tagRestorer{}})
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	return nil
}
