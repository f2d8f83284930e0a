package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Component names, also the base names of their log files in Cluster.Dir.
const (
	ComponentEtcd              = "etcd"
	ComponentAPIServer         = "kube-apiserver"
	ComponentControllerManager = "kube-controller-manager"
	ComponentScheduler         = "kube-scheduler"
	ComponentKWOK              = "kwok"
)

const (
	// KWOKNodeAnnotation marks the nodes KWOK manages (value "fake"); KWOK ignores other nodes.
	KWOKNodeAnnotation = "kwok.x-k8s.io/node"
	// DefaultNodes is how many fake nodes Start creates when Options.Nodes is 0.
	DefaultNodes = 3
	// DefaultStartTimeout bounds Start and StartControlPlane when Options.StartTimeout is 0.
	DefaultStartTimeout = 2 * time.Minute

	modulePath = "github.com/fixity-dev/fixity"
	// Pod IPs come from a range apart from envtest's service range (10.0.0.0/24).
	podCIDR = "10.244.0.0/16"
	// With the node lease as heartbeat (as kwokctl does), the node lifecycle controller keeps
	// the nodes Ready without KWOK rewriting node status every few seconds.
	nodeLeaseSeconds = "40"
	stopTimeout      = 10 * time.Second
)

// Options configures StartControlPlane and Start. The zero value is usable.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
	// kwok. Default: $FIXITY_K8S_BIN, else <repo root>/bin/k8s.
	BinDir string
	// KWOKStagesPath is the KWOK stage configuration (Start only).
	// Default: <repo root>/hack/kwok/stages.yaml.
	KWOKStagesPath string
	// CRDDirectoryPaths are files or directories of CRD manifests to install; a missing path
	// is an error.
	CRDDirectoryPaths []string
	// WebhookPaths are files or directories of Mutating/ValidatingWebhookConfigurations.
	// envtest rewrites their service references into URLs on WebhookHost:WebhookPort with its
	// own CA; serve them with the certificate in Cluster.Webhook.LocalServingCertDir.
	WebhookPaths []string
	// WebhookHost is where the API server calls webhooks. Default 127.0.0.1.
	WebhookHost string
	// WebhookPort is the webhook port; 0 picks a free one. Set it when the webhook server is
	// a separate process whose flags are fixed before the cluster starts.
	WebhookPort int
	// Nodes is how many fake nodes Start creates (Start only). Default DefaultNodes.
	Nodes int
	// Dir is the work directory: component logs, the kubeconfig, etcd data and API server
	// certificates (the last two are recreated on every start). Default: a new temporary
	// directory, removed by Stop unless KeepDir is set (a failed start always keeps it).
	Dir string
	// KeepDir keeps a default Dir after Stop, for reading the logs.
	KeepDir bool
	// StartTimeout bounds the start-up from the first process to a ready cluster (envtest
	// separately gives etcd and kube-apiserver a minute each). Default DefaultStartTimeout.
	StartTimeout time.Duration
	// RealNode, if set, adds one node run by a real kubelet and containerd (Start only),
	// labelled RealNodeLabel and tainted RealNodeTaint, next to the fake ones.
	RealNode *RealNodeOptions
	// Stdout, if set, receives progress messages and a copy of every component's output,
	// each line prefixed with the component name (os.Stdout is handy when debugging).
	Stdout io.Writer
}

// Cluster is a running local cluster. Stop it when done.
type Cluster struct {
	// Config authenticates as an admin (group system:masters).
	Config *rest.Config
	// KubeconfigPath is a kubeconfig file for Config, usable by kubectl and child processes.
	KubeconfigPath string
	// Env is the envtest environment running etcd and kube-apiserver.
	Env *envtest.Environment
	// Webhook is Env.WebhookInstallOptions: LocalServingHost, LocalServingPort and
	// LocalServingCertDir (tls.crt, tls.key) tell a webhook server where and how to serve.
	Webhook *envtest.WebhookInstallOptions
	// Dir is the work directory holding <component>.log files, the kubeconfig, etcd data and
	// API server certificates.
	Dir string
	// BinDir is where the binaries came from.
	BinDir string
	// NodeNames are the fake nodes (Start only).
	NodeNames []string
	// RealNodeName is the node of a real kubelet and containerd (Options.RealNode), else empty.
	RealNodeName string

	full     bool
	ownsDir  bool
	keepDir  bool
	out      *output
	children []*child
	reaper   *reaper
	logFiles []*os.File
	stopOnce sync.Once
	stopErr  error
	realNode *realNode
	// kubeletClientCA is the CA of the API server's kubelet client certificate (RealNode only).
	kubeletClientCA string
}

// StartControlPlane starts etcd and kube-apiserver only, installs opts.CRDDirectoryPaths and
// opts.WebhookPaths, and returns once the API server serves them.
func StartControlPlane(opts Options) (*Cluster, error) {
	return start(opts, false)
}

// Start starts a full cluster: the control plane of StartControlPlane with the ServiceAccount
// admission plugin enabled, kube-controller-manager, kube-scheduler, KWOK and opts.Nodes fake
// nodes. It returns once the nodes are Ready and schedulable, both controllers hold their
// leader leases, and the default ServiceAccount exists in namespace default.
func Start(opts Options) (*Cluster, error) {
	return start(opts, true)
}

func start(opts Options, full bool) (_ *Cluster, err error) {
	if err := opts.defaults(full); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()

	c := &Cluster{
		Dir:     opts.Dir,
		BinDir:  opts.BinDir,
		full:    full,
		keepDir: opts.KeepDir,
		out:     &output{w: opts.Stdout},
	}
	if c.Dir == "" {
		c.Dir, err = os.MkdirTemp("", "fixity-cluster-")
		if err != nil {
			return nil, fmt.Errorf("creating cluster work dir: %w", err)
		}
		c.ownsDir = true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cluster work dir: %w", err)
	}
	defer func() {
		if err != nil {
			// Keep the logs the error points at.
			c.keepDir = true
			if stopErr := c.Stop(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stopping after failed start: %w", stopErr))
			}
		}
	}()

	began := time.Now()
	if err := c.startControlPlane(opts, full); err != nil {
		return nil, err
	}
	c.out.printf("Control plane up in %s (dir %s)", time.Since(began).Round(time.Millisecond), c.Dir)
	if !full {
		return c, nil
	}

	if err := c.startNodeComponents(ctx, opts); err != nil {
		return nil, err
	}
	c.out.printf("Cluster ready in %s", time.Since(began).Round(time.Millisecond))
	return c, nil
}

func (o *Options) defaults(full bool) error {
	var root string
	repoRoot := func() (string, error) {
		if root != "" {
			return root, nil
		}
		var err error
		root, err = RepoRoot()
		return root, err
	}
	if o.BinDir == "" {
		o.BinDir = os.Getenv("FIXITY_K8S_BIN")
	}
	if o.BinDir == "" {
		r, err := repoRoot()
		if err != nil {
			return fmt.Errorf("locating bin/k8s (set Options.BinDir or FIXITY_K8S_BIN): %w", err)
		}
		o.BinDir = filepath.Join(r, "bin", "k8s")
	}
	needed := []string{ComponentEtcd, ComponentAPIServer}
	if full {
		needed = append(needed, ComponentControllerManager, ComponentScheduler, ComponentKWOK)
		if o.KWOKStagesPath == "" {
			r, err := repoRoot()
			if err != nil {
				return fmt.Errorf("locating hack/kwok/stages.yaml (set Options.KWOKStagesPath): %w", err)
			}
			o.KWOKStagesPath = filepath.Join(r, "hack", "kwok", "stages.yaml")
		}
		if _, err := os.Stat(o.KWOKStagesPath); err != nil {
			return fmt.Errorf("reading KWOK stages: %w", err)
		}
		if o.Nodes == 0 {
			o.Nodes = DefaultNodes
		}
		if o.Nodes < 0 {
			return fmt.Errorf("options: Nodes is %d, want at least 0", o.Nodes)
		}
		if o.RealNode != nil {
			if err := o.RealNode.defaults(); err != nil {
				return err
			}
		}
	} else if o.RealNode != nil {
		return errors.New("options: RealNode needs Start, not StartControlPlane")
	}
	for _, name := range needed {
		if _, err := os.Stat(filepath.Join(o.BinDir, name)); err != nil {
			return fmt.Errorf("finding %s in %s (build it with hack/build-k8s.sh): %w", name, o.BinDir, err)
		}
	}
	if o.WebhookHost == "" {
		o.WebhookHost = "127.0.0.1"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return nil
}

// RepoRoot finds the fixity repository root by walking up from the working directory (go test
// runs in the package directory) to the go.mod of module github.com/fixity-dev/fixity.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	for start := dir; ; {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && moduleOf(data) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s in %s or its parents", modulePath, start)
		}
		dir = parent
	}
}

// moduleOf returns the module path declared in go.mod data.
func moduleOf(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			rest = strings.TrimSpace(rest)
			if unquoted, err := strconv.Unquote(rest); err == nil {
				return unquoted
			}
			return rest
		}
	}
	return ""
}

func (c *Cluster) startControlPlane(opts Options, full bool) error {
	etcdLog, err := c.openLog(ComponentEtcd)
	if err != nil {
		return err
	}
	apiLog, err := c.openLog(ComponentAPIServer)
	if err != nil {
		return err
	}
	// etcd data and API server certificates live in Dir too, fresh each time: envtest would
	// reuse certificates it finds there, and old etcd data would resurrect an old cluster.
	etcdDir := filepath.Join(c.Dir, "etcd")
	certDir := filepath.Join(c.Dir, "apiserver")
	for _, dir := range []string{etcdDir, certDir} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clearing %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	etcdPort, err := FreePort()
	if err != nil {
		return err
	}
	apiPort, err := FreePort()
	if err != nil {
		return err
	}

	c.Env = &envtest.Environment{
		BinaryAssetsDirectory: opts.BinDir,
		CRDDirectoryPaths:     opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:            opts.WebhookPaths,
			LocalServingHost: opts.WebhookHost,
			LocalServingPort: opts.WebhookPort,
		},
		// envtest would otherwise honour USE_EXISTING_CLUSTER and talk to a real cluster.
		UseExistingCluster:       new(false),
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	// Explicit paths win over a stray KUBEBUILDER_ASSETS, and explicit addresses keep every
	// listener on 127.0.0.1 even where "localhost" resolves to ::1.
	c.Env.ControlPlane.Etcd = &envtest.Etcd{
		Path:    filepath.Join(opts.BinDir, ComponentEtcd),
		DataDir: etcdDir,
		URL:     &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdPort))},
		Out:     c.out.tee(ComponentEtcd, etcdLog),
		Err:     c.out.tee(ComponentEtcd, etcdLog),
	}
	api := c.Env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(opts.BinDir, ComponentAPIServer)
	api.CertDir = certDir
	api.SecureServing = envtest.SecureServing{
		ListenAddr: envtest.ListenAddr{Address: "127.0.0.1", Port: strconv.Itoa(apiPort)},
	}
	api.Out = c.out.tee(ComponentAPIServer, apiLog)
	api.Err = c.out.tee(ComponentAPIServer, apiLog)
	c.Env.ControlPlane.KubectlPath = filepath.Join(opts.BinDir, "kubectl")
	if full {
		args := api.Configure()
		// envtest disables ServiceAccount admission; a real cluster has it, and it is what
		// requires a pod's service account to exist and mounts its token.
		args.Disable("disable-admission-plugins")
		// The default reconciler refuses to publish the loopback advertise address.
		args.Set("endpoint-reconciler-type", "none")
		// KWOK nodes have loopback InternalIPs and hostnames nothing resolves; dial the IP so
		// exec/attach that get past admission fail fast with "connection refused" instead of
		// waiting on a DNS lookup.
		args.Set("kubelet-preferred-address-types", "InternalIP")
		if opts.RealNode != nil {
			// The real kubelet authenticates the API server by a client certificate.
			ca, cert, key, err := kubeletClientCert(c.Dir)
			if err != nil {
				return fmt.Errorf("making the API server's kubelet client certificate: %w", err)
			}
			args.Set("kubelet-client-certificate", cert)
			args.Set("kubelet-client-key", key)
			c.kubeletClientCA = ca
		}
	}

	cfg, err := c.Env.Start()
	if err != nil {
		return fmt.Errorf("starting envtest control plane (see %s and %s): %w",
			c.LogPath(ComponentAPIServer), c.LogPath(ComponentEtcd), err)
	}
	c.Config = cfg
	c.Webhook = &c.Env.WebhookInstallOptions
	if err := c.startReaper(); err != nil {
		return err
	}

	c.KubeconfigPath = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.KubeconfigPath, c.Env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	return nil
}

func (c *Cluster) startNodeComponents(ctx context.Context, opts Options) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	// The controller manager publishes this CA to every namespace (kube-root-ca.crt).
	caPath := filepath.Join(c.Dir, "ca.crt")
	if err := os.WriteFile(caPath, c.Config.CAData, 0o600); err != nil {
		return fmt.Errorf("writing API server CA: %w", err)
	}
	certDir := c.Env.ControlPlane.GetAPIServer().CertDir

	// Nodes first: they are ready for KWOK as soon as it starts.
	if err := c.createNodes(ctx, cs, opts.Nodes); err != nil {
		return err
	}

	kubeconfig := "--kubeconfig=" + c.KubeconfigPath
	if err := c.startChild(ComponentControllerManager, nil,
		kubeconfig,
		// No cloud and no pod network: node IPAM has nothing to do and would fail.
		"--controllers=*,-nodeipam",
		// envtest signs service-account tokens with this key; the controller manager's token
		// controller and the API server must agree.
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+caPath,
		// Serve nothing: no port to collide with, no serving certificates to make.
		"--secure-port=0",
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--v=2",
	); err != nil {
		return err
	}
	if err := c.startChild(ComponentScheduler, nil,
		kubeconfig,
		"--secure-port=0",
		"--v=2",
	); err != nil {
		return err
	}
	if err := c.startChild(ComponentKWOK,
		// KWOK would also load ~/.kwok/kwok.yaml; keep it to this cluster's own work dir.
		[]string{"KWOK_WORKDIR=" + filepath.Join(c.Dir, "kwok")},
		kubeconfig,
		"--config="+opts.KWOKStagesPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+KWOKNodeAnnotation+"=fake",
		"--node-lease-duration-seconds="+nodeLeaseSeconds,
		"--cidr="+podCIDR,
	); err != nil {
		return err
	}

	// KWOK makes the nodes Ready, then the controller manager lifts their not-ready taint.
	if err := c.waitFor(ctx, "the nodes to become Ready and schedulable", func(ctx context.Context) (bool, error) {
		return c.nodesReady(ctx, cs)
	}, ComponentKWOK, ComponentControllerManager); err != nil {
		return err
	}
	for _, name := range []string{ComponentControllerManager, ComponentScheduler} {
		if err := c.waitFor(ctx, name+" to hold its leader lease", func(ctx context.Context) (bool, error) {
			lease, err := cs.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", nil
		}, name); err != nil {
			return err
		}
	}
	if err := c.waitForServiceAccount(ctx, cs, metav1.NamespaceDefault); err != nil {
		return err
	}
	if opts.RealNode == nil {
		return nil
	}
	began := time.Now()
	if err := c.startRealNode(ctx, cs, *opts.RealNode, c.kubeletClientCA); err != nil {
		return err
	}
	c.RealNodeName = RealNodeName
	c.out.printf("Real node %s ready in %s", RealNodeName, time.Since(began).Round(time.Millisecond))
	return nil
}

// createNodes registers the fake nodes KWOK will play the kubelet for.
func (c *Cluster) createNodes(ctx context.Context, cs kubernetes.Interface, n int) error {
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := kwokNode(name, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1))
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
		c.NodeNames = append(c.NodeNames, name)
	}
	return nil
}

// kwokNode is a fake node KWOK plays the kubelet for, with a loopback address.
func kwokNode(name, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{KWOKNodeAnnotation: "fake"},
			Labels: map[string]string{
				corev1.LabelHostname:   name,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: "amd64",
				"type":                 "kwok",
			},
		},
		// A kubelet registers its addresses; a loopback one per node keeps anything that
		// dials a node (or a hostNetwork pod) on this machine.
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip},
				{Type: corev1.NodeHostName, Address: name},
			},
		},
	}
}

// extraNodes counts the nodes AddNode made, for their addresses (127.2.x.y).
var extraNodes atomic.Int32

// AddNode registers one more fake node called name, with labels and taints added to the usual
// ones and the nodeInfo a kubelet would report, and returns it once KWOK has made it Ready.
func (c *Cluster) AddNode(ctx context.Context, name string, labels map[string]string, taints []corev1.Taint, info corev1.NodeSystemInfo) (*corev1.Node, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	i := extraNodes.Add(1)
	node := kwokNode(name, fmt.Sprintf("127.2.%d.%d", i/250, i%250+1))
	maps.Copy(node.Labels, labels)
	node.Spec.Taints = taints
	node.Spec.ProviderID = "kwok://" + name
	node.Status.NodeInfo = info
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating node %s: %w", name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = n
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for node %s to be Ready: %w", name, err)
	}
	return node, nil
}

func (c *Cluster) nodesReady(ctx context.Context, cs kubernetes.Interface) (bool, error) {
	for _, name := range c.NodeNames {
		node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		// The node lifecycle controller lifts this taint a moment after Ready; until then
		// nothing schedules there.
		for _, taint := range node.Spec.Taints {
			if taint.Key == corev1.TaintNodeNotReady {
				ready = false
			}
		}
		if !ready {
			return false, nil
		}
	}
	return true, nil
}

func (c *Cluster) waitForServiceAccount(ctx context.Context, cs kubernetes.Interface, namespace string) error {
	return c.waitFor(ctx, "ServiceAccount default in namespace "+namespace, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}, ComponentControllerManager)
}

// waitFor polls cond until it holds, failing early if a child process exits; errors name the
// log of the component responsible.
func (c *Cluster) waitFor(ctx context.Context, what string, cond wait.ConditionWithContextFunc, components ...string) error {
	logs := make([]string, len(components))
	for i, name := range components {
		logs[i] = c.LogPath(name)
	}
	see := strings.Join(logs, " and ")
	var lastErr, exitErr error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exitErr = c.exitedChild(); exitErr != nil {
			return false, exitErr
		}
		ok, err := cond(ctx)
		if err != nil {
			// API hiccups during start-up are retried; the last one is reported on timeout.
			lastErr = err
			return false, nil
		}
		return ok, nil
	})
	switch {
	case exitErr != nil:
		return fmt.Errorf("waiting for %s: %w", what, exitErr)
	case err != nil && lastErr != nil:
		return fmt.Errorf("waiting for %s (see %s): %w (last error: %w)", what, see, err, lastErr)
	case err != nil:
		return fmt.Errorf("waiting for %s (see %s): %w", what, see, err)
	}
	return nil
}

// CreateNamespace creates a namespace and, in a full cluster, waits for its default
// ServiceAccount: until the controller manager creates it, the API server rejects pods there.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	if !c.full {
		return nil
	}
	// The controller manager creates it within moments; the bound only guards a dead one.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return c.waitForServiceAccount(ctx, cs, name)
}

// Kubectl returns a kubectl command from BinDir using the admin kubeconfig.
func (c *Cluster) Kubectl(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig=" + c.KubeconfigPath}, args...)...)
}

// LogPath is the log file of a component (one of the Component constants).
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.Dir, component+".log")
}

// PIDs maps the child processes Start launched (controller manager, scheduler, KWOK) to their
// process ids. etcd and kube-apiserver belong to Env and are not included.
func (c *Cluster) PIDs() map[string]int {
	pids := make(map[string]int, len(c.children))
	for _, ch := range c.children {
		pids[ch.name] = ch.cmd.Process.Pid
	}
	return pids
}

// TailLogs returns the last lines of every component log, for a failing test to print.
func (c *Cluster) TailLogs(lines int) string {
	var b strings.Builder
	for _, name := range []string{ComponentEtcd, ComponentAPIServer, ComponentControllerManager, ComponentScheduler, ComponentKWOK, ComponentContainerd, ComponentKubelet} {
		data, err := os.ReadFile(c.LogPath(name))
		if err != nil {
			continue
		}
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "==> %s <==\n%s\n", c.LogPath(name), strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
	return b.String()
}

// Stop stops KWOK, the scheduler and the controller manager (SIGTERM, then SIGKILL after 10s),
// then etcd and the API server (through Env.Stop), and removes a default Dir unless it is kept. It reports child
// processes that had died before Stop. Later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.realNode != nil {
			if err := c.realNode.stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping the real node: %w", err))
			}
		}
		for i := len(c.children) - 1; i >= 0; i-- {
			if err := c.children[i].stop(stopTimeout); err != nil {
				errs = append(errs, err)
			}
		}
		// Disarm the reaper before envtest stops etcd and the API server, so it can never
		// signal their recycled process ids.
		if err := c.stopReaper(); err != nil {
			errs = append(errs, err)
		}
		if c.Env != nil {
			if err := c.Env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping envtest control plane (see %s): %w", c.LogPath(ComponentAPIServer), err))
			}
		}
		for _, f := range c.logFiles {
			_ = f.Close()
		}
		c.out.flush()
		if c.ownsDir && !c.keepDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("removing cluster work dir: %w", err))
			}
		} else {
			c.out.printf("Cluster logs kept in %s", c.Dir)
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// openLog creates the log file of a component, emptying one left in a reused Dir; the files
// stay open until Stop.
func (c *Cluster) openLog(component string) (*os.File, error) {
	f, err := os.OpenFile(c.LogPath(component), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating %s log: %w", component, err)
	}
	c.logFiles = append(c.logFiles, f)
	return f, nil
}

// FreePort asks the kernel for a free port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
