package controllers

import (
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fixity-dev/fixity/controllers/accessapproval"
	"github.com/fixity-dev/fixity/controllers/accessgrant"
	"github.com/fixity-dev/fixity/controllers/accessreview"
	"github.com/fixity-dev/fixity/controllers/drift"
	"github.com/fixity-dev/fixity/controllers/immutabilitypolicy"
	"github.com/fixity-dev/fixity/controllers/nodedrift"
	"github.com/fixity-dev/fixity/controllers/nodeimmutabilitypolicy"
	"github.com/fixity-dev/fixity/controllers/recreate"
	"github.com/fixity-dev/fixity/controllers/reports"
	accessreviewlib "github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/operator"
	"github.com/fixity-dev/fixity/internal/remediation"
)

// Setup registers every controller with mgr.
func Setup(mgr ctrl.Manager, d *operator.Deps) error {
	if err := (&immutabilitypolicy.Reconciler{
		Client: mgr.GetClient(), Drift: d.Tracker, DriftChanged: d.DriftChanged, Namespace: d.Namespace,
		Authorities: d.Images.Authorities, Access: d.AccessReview,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ImmutabilityPolicy controller: %w", err)
	}
	if err := (&accessgrant.Reconciler{Client: mgr.GetClient(), Events: d.Events, Clock: d.Clock, Grants: d.Access.Finder}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the AccessGrant controller: %w", err)
	}
	if err := (&accessreview.Reconciler{
		Client: mgr.GetClient(), Reviewer: &accessreviewlib.Reviewer{Client: mgr.GetClient()}, Store: d.AccessReview,
		Matcher: d.Matcher, Events: d.Events, Operator: d.Self.Username, Wake: d.DriftChanged,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RBAC review controller: %w", err)
	}
	if err := (&accessapproval.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the AccessApproval controller: %w", err)
	}
	driftReconciler := &drift.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Matcher: d.Matcher,
		Detector: d.Detector, Tracker: d.Tracker, Checks: d.Checks, Versions: d.Versions,
		Evictor: remediation.NewEvictor(mgr.GetClient()),
		Gate: &remediation.Gate{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: d.Namespace,
			Timeout: d.ReplacementTimeout, Clock: d.Clock,
		},
		Census: d.Census, Ledger: d.Ledger, Events: d.Events, Namespace: d.Namespace, ConfigCache: d.ConfigCache,
		StatsChanged: d.StatsChanged,
	}
	if err := driftReconciler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the drift controller: %w", err)
	}
	// The kubelet stats poller feeds the drift controller, on the leader like it.
	d.Stats.Nodes = driftReconciler.WritableLayerNodes
	if err := mgr.Add(d.Stats); err != nil {
		return fmt.Errorf("adding the kubelet stats poller: %w", err)
	}
	if err := (&recreate.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Ledger: d.Ledger, Events: d.Events, Namespace: d.Namespace,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the recreate controller: %w", err)
	}
	if err := (&nodeimmutabilitypolicy.Reconciler{Client: mgr.GetClient(), Namespace: d.Namespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the NodeImmutabilityPolicy controller: %w", err)
	}
	if err := (&nodedrift.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Tracker: d.NodeTracker, Census: d.NodeCensus,
		Evictor: remediation.NewEvictor(mgr.GetClient()), Ledger: d.Ledger, Pods: d.Matcher, Checks: d.Checks, Events: d.Events,
		Clock: d.Clock, Namespace: d.Namespace,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the node drift controller: %w", err)
	}
	return setupReports(mgr, d)
}

// setupReports registers the OpenReports writers where the API server serves OpenReports.
func setupReports(mgr ctrl.Manager, d *operator.Deps) error {
	installed, err := reports.Installed(mgr.GetRESTMapper())
	if err != nil {
		return fmt.Errorf("asking whether OpenReports is installed: %w", err)
	}
	if !installed {
		mgr.GetLogger().Info("OpenReports CRDs are not installed: no Report or ClusterReport is written (install them with the chart's openreports.installCRDs, or another tool's, and restart)")
		return nil
	}
	if err := (&reports.Namespaces{
		Client: mgr.GetClient(), Tracker: d.Tracker, Checks: d.SpecChecks, Clock: d.Clock, Changed: d.PodReports,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the namespace reports controller: %w", err)
	}
	if err := (&reports.Cluster{Client: mgr.GetClient(), Nodes: d.NodeTracker, Access: d.AccessReview, Clock: d.Clock}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the cluster reports controller: %w", err)
	}
	return nil
}
