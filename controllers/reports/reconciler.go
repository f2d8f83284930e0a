package reports

import (
	"context"
	"fmt"
	"strings"
	"time"

	openreports "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	crreconcile "sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/accessreview"
	"github.com/fixity-dev/fixity/internal/admit"
	"github.com/fixity-dev/fixity/internal/drift"
	"github.com/fixity-dev/fixity/internal/nodedrift"
	"github.com/fixity-dev/fixity/internal/reports"
)

// +kubebuilder:rbac:groups=openreports.io,resources=reports;clusterreports,verbs=get;list;watch;create;update;patch;delete

// coalesce gathers a rollout's many pod changes into one write per namespace.
const coalesce = 2 * time.Second

// resync catches what no watch tells: a node evaluated under another policy, a review redone.
const resync = time.Minute

// Installed reports whether the API server serves OpenReports: the reports are written only
// where its CRDs are installed (by the chart, or by another tool).
func Installed(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(openreports.SchemeGroupVersion.WithKind("Report").GroupKind(), openreports.SchemeGroupVersion.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	return err == nil, err
}

// Namespaces keeps each namespace's Report: for each pod drift detection has looked at, a
// result per matching policy and rule.
type Namespaces struct {
	client.Client
	Tracker *drift.Tracker
	// Checks judge a running pod's spec by the admission rules that need no registry.
	Checks []admit.Check
	Clock  clock.PassiveClock
	// Changed carries the pods whose findings changed (drift.Tracker.OnPod).
	Changed <-chan event.GenericEvent
}

// Reconcile writes the Report of namespace req.Name, or deletes it when nothing is left to say.
func (r *Namespaces) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(req.Name)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the pods of namespace %s: %w", req.Name, err)
	}
	var list fixityv1.ImmutabilityPolicyList
	if err := r.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing ImmutabilityPolicies: %w", err)
	}
	policies := make(map[string]*fixityv1.ImmutabilityPolicy, len(list.Items))
	for i := range list.Items {
		policies[list.Items[i].Name] = &list.Items[i]
	}
	var entries []reports.Entry
	for i := range pods.Items {
		pod := &pods.Items[i]
		st, ok := r.Tracker.Get(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
		if !ok || pod.DeletionTimestamp != nil {
			continue
		}
		var matched []fixityv1.ImmutabilityPolicy
		for name := range st.Findings {
			if p, ok := policies[name]; ok {
				matched = append(matched, *p)
			}
		}
		vs := admit.RunChecks(ctx, r.Checks, matched, &admit.Request{Pod: pod, Template: true})
		entries = append(entries, reports.Pod(pod, st, policies, vs)...)
	}
	report := &openreports.Report{}
	report.Name, report.Namespace = fixityv1.ReportName, req.Name
	return ctrl.Result{}, write(ctx, r.Client, report, fields{&report.Source, &report.Configuration, &report.Summary, &report.Results}, entries, r.Clock.Now())
}

// SetupWithManager registers the reconciler: a pod's findings changed, or a report was changed
// by someone else.
func (r *Namespaces) SetupWithManager(mgr ctrl.Manager) error {
	toNamespace := handler.Funcs{GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
		q.AddAfter(crreconcile.Request{NamespacedName: types.NamespacedName{Name: e.Object.GetNamespace()}}, coalesce)
	}}
	own := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("namespacereports").
		WatchesRawSource(source.Channel(r.Changed, toNamespace)).
		Watches(&openreports.Report{}, own, builder.WithPredicates(ours())).
		Complete(r)
}

// Cluster keeps the ClusterReports: node drift per node, policy and check; the access review's
// findings per subject and door.
type Cluster struct {
	client.Client
	Nodes  *nodedrift.Tracker
	Access *accessreview.Store
	Clock  clock.PassiveClock
}

var cluster = ctrl.Request{NamespacedName: types.NamespacedName{Name: "cluster"}}

// Reconcile writes both ClusterReports.
func (r *Cluster) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing nodes: %w", err)
	}
	var list fixityv1.NodeImmutabilityPolicyList
	if err := r.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing NodeImmutabilityPolicies: %w", err)
	}
	byName := make(map[string]*fixityv1.NodeImmutabilityPolicy, len(list.Items))
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	var entries []reports.Entry
	for i := range nodes.Items {
		node := &nodes.Items[i]
		var policies []*fixityv1.NodeImmutabilityPolicy
		for _, name := range r.Nodes.Policies(node.Name) {
			if p, ok := byName[name]; ok {
				policies = append(policies, p)
			}
		}
		if len(policies) == 0 {
			continue
		}
		var nb fixityv1.NodeBaseline
		if err := r.Get(ctx, client.ObjectKey{Name: node.Name}, &nb); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("reading the NodeBaseline of node %s: %w", node.Name, err)
		}
		entries = append(entries, reports.Node(node, nb.Status.Drifted, policies)...)
	}
	now := r.Clock.Now()
	nodesReport := &openreports.ClusterReport{}
	nodesReport.Name = fixityv1.NodesReportName
	if err := write(ctx, r.Client, nodesReport, fields{&nodesReport.Source, &nodesReport.Configuration, &nodesReport.Summary, &nodesReport.Results}, entries, now); err != nil {
		return ctrl.Result{}, err
	}
	// Before the first review there is nothing to say either way: the report is left as it is.
	if findings, reviewed := r.Access.Get(); reviewed {
		access := &openreports.ClusterReport{}
		access.Name = fixityv1.AccessReportName
		if err := write(ctx, r.Client, access, fields{&access.Source, &access.Configuration, &access.Summary, &access.Results}, reports.Access(findings), now); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// SetupWithManager registers the reconciler: every watched change maps to the one request.
func (r *Cluster) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(cluster, coalesce)
		},
		UpdateFunc: func(_ context.Context, _ event.UpdateEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(cluster, coalesce)
		},
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[crreconcile.Request]) {
			q.AddAfter(cluster, coalesce)
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusterreports").
		Watches(&fixityv1.NodeBaseline{}, one).
		Watches(&fixityv1.NodeImmutabilityPolicy{}, one, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&openreports.ClusterReport{}, one, builder.WithPredicates(ours())).
		Complete(r)
}

// ours selects the reports Fixity writes.
func ours() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[fixityv1.ReportLabel] == "true" })
}

// fields are a Report's or a ClusterReport's fields, which are the same.
type fields struct {
	source  *string
	config  **openreports.ReportConfiguration
	summary *openreports.ReportSummary
	results *[]openreports.ReportResult
}

// write creates or patches obj with entries' results (an unchanged report is not written), or
// deletes it when there are none.
func write(ctx context.Context, c client.Client, obj client.Object, f fields, entries []reports.Entry, now time.Time) error {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1alpha1.")
	if len(entries) == 0 {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading %s %s: %w", kind, client.ObjectKeyFromObject(obj), err)
		}
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting %s %s, which has nothing left to report: %w", kind, client.ObjectKeyFromObject(obj), err)
		}
		return nil
	}
	op, err := controllerutil.CreateOrPatch(ctx, c, obj, func() error {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[fixityv1.ReportLabel] = "true"
		labels["app.kubernetes.io/managed-by"] = fixityv1.ReportSource
		obj.SetLabels(labels)
		*f.source = fixityv1.ReportSource
		*f.config = &openreports.ReportConfiguration{Limits: openreports.Limits{MaxResults: fixityv1.MaxReportResults}}
		*f.results, *f.summary = reports.Results(entries, *f.results, now)
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %s %s: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	if op != controllerutil.OperationResultNone {
		ctrl.LoggerFrom(ctx).V(1).Info("Report written", "report", klog.KObj(obj), "operation", op,
			"pass", f.summary.Pass, "fail", f.summary.Fail, "warn", f.summary.Warn)
	}
	return nil
}
