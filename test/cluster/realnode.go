package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Real node component names, also the base names of their log files in Cluster.Dir.
const (
	ComponentContainerd = "containerd"
	ComponentKubelet    = "kubelet"
)

const (
	// RealNodeLabel marks the node run by a real kubelet and containerd (value "true"); tests
	// that need a runtime select it by this label.
	RealNodeLabel = "fixity.dev/real-node"
	// RealNodeTaint keeps every other pod off the real node: the e2e images are random bytes
	// that only KWOK can "run". Pods for the real node tolerate it (RealNodeToleration).
	RealNodeTaint = RealNodeLabel
	// RealNodeName is the real node's name.
	RealNodeName = "real-node-0"

	// The real node's address and its pods' network: a bridge the harness creates, one per
	// cluster (several test binaries may run at once), fixity-rnN on 10.250.N.0/24. The kubelet
	// refuses a loopback node IP, so the node gets the bridge's own address, local to this
	// machine; pods get addresses behind it, in the network namespaces containerd makes. Nothing
	// routes out: no masquerade, no default route for the pods.
	realNodeBridgePrefix = "fixity-rn"
	realNodeNetworks     = 250
	// The kubelet's cgroups live under fixity-real-node-N in every cgroup v1 hierarchy, so that
	// Stop can find and kill every container process however the runtime left it.
	realNodeCgroupPrefix = "fixity-real-node-"
)

// RealNodeOptions adds one node run by a real kubelet and containerd (Start only).
type RealNodeOptions struct {
	// BinDir holds kubelet, containerd, containerd-shim-runc-v2 and pause (hack/build-node.sh).
	// Default: $FIXITY_NODE_BIN, else <repo root>/bin/node.
	BinDir string
	// SandboxImage is the pause image (see PauseBinary), already pushed to a registry in
	// Registries: nothing else is reachable.
	SandboxImage string
	// Registries are the loopback registries (host:port) the node pulls from, over plain HTTP.
	Registries []string
}

// RealNodeToleration lets a pod onto the real node (with a nodeSelector on RealNodeLabel).
func RealNodeToleration() corev1.Toleration {
	return corev1.Toleration{Key: RealNodeTaint, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}
}

// RealNodeBinDir is where the real node's binaries are by default.
func RealNodeBinDir() (string, error) {
	if dir := os.Getenv("FIXITY_NODE_BIN"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("locating bin/node (set RealNodeOptions.BinDir or FIXITY_NODE_BIN): %w", err)
	}
	return filepath.Join(root, "bin", "node"), nil
}

// realNode is the running real node: what Stop must undo, in reverse.
type realNode struct {
	opts    RealNodeOptions
	dir     string
	bridge  string   // the bridge's name, once created
	ip      string   // the node's address, the bridge's
	subnet  string   // the pods'
	cgroup  string   // the cgroup parent's name
	cgroups []string // the parent cgroup in each hierarchy
	// servingCA, servingCert and servingKey are the kubelet's serving certificate's files.
	servingCA, servingCert, servingKey string
	// clientCAs trusts the API server's kubelet client certificate and every user certificate
	// the API server trusts, as a kubelet given the cluster CA does.
	clientCAs string
	started   []*child
	kubelet   *child
	// sock is containerd's socket.
	sock string
}

// kernelTunables are the sysctls the kubelet (without protectKernelDefaults) and the CNI bridge
// plugin (ip_forward, for a gateway bridge) set; they are put back on Stop.
var kernelTunables = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

func (o *RealNodeOptions) defaults() error {
	if o.BinDir == "" {
		dir, err := RealNodeBinDir()
		if err != nil {
			return err
		}
		o.BinDir = dir
	}
	for _, name := range []string{ComponentKubelet, ComponentContainerd, "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, name)); err != nil {
			return fmt.Errorf("real node: finding %s in %s (build it with hack/build-node.sh): %w", name, o.BinDir, err)
		}
	}
	for _, dep := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(dep); err != nil {
			return fmt.Errorf("real node: %s is missing (hack/build-node.sh installs containernetworking-plugins): %w", dep, err)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return fmt.Errorf("real node: runc is missing (hack/build-node.sh installs it): %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("real node: a kubelet and containerd need root")
	}
	if o.SandboxImage == "" {
		return errors.New("real node: SandboxImage is required (push PauseBinary's image first)")
	}
	return nil
}

// PauseBinary is the pause program (built from the Kubernetes source by hack/build-node.sh),
// for the sandbox image a test pushes before Start.
func (o RealNodeOptions) PauseBinary() (string, error) {
	dir := o.BinDir
	if dir == "" {
		var err error
		if dir, err = RealNodeBinDir(); err != nil {
			return "", err
		}
	}
	p := filepath.Join(dir, "pause")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("finding pause (build it with hack/build-node.sh): %w", err)
	}
	return p, nil
}

// kubeletClientCert makes the certificate the API server presents to the kubelet (exec,
// attach, logs), signed by a CA only the kubelet trusts; its group system:masters is what the
// kubelet's webhook authorizer then asks the API server about. Returns the CA file and the
// certificate and key files.
func kubeletClientCert(dir string) (caFile, certFile, keyFile string, err error) {
	return issueCert(dir, "kubelet-client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// kubeletServingCert makes the kubelet's serving certificate for ip, signed by a CA of its own,
// so that a client verifies the kubelet (as Fixity's stats reader does) rather than trusting any
// address a node reports. Returns the CA file and the certificate and key files.
func kubeletServingCert(dir, ip string) (caFile, certFile, keyFile string, err error) {
	return issueCert(dir, "kubelet-serving", &x509.Certificate{
		Subject:     pkix.Name{CommonName: RealNodeName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(ip)}, DNSNames: []string{RealNodeName},
	})
}

// issueCert makes a CA of its own and a certificate from tmpl (subject, usages, names) signed
// by it, valid for a day, and writes <name>-ca.crt, <name>.crt and <name>.key in dir.
func issueCert(dir, name string, tmpl *x509.Certificate) (caFile, certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fixity-" + name + "-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(2), now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	caFile, certFile, keyFile = filepath.Join(dir, name+"-ca.crt"), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for file, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			return "", "", "", fmt.Errorf("writing %s: %w", file, err)
		}
	}
	return caFile, certFile, keyFile, nil
}

// RealNodeBridge is the bridge of the real node's address and pods, empty without one.
func (c *Cluster) RealNodeBridge() string {
	if c.realNode == nil {
		return ""
	}
	return c.realNode.bridge
}

// KubeletCAFile is the CA of the real node's kubelet serving certificate, empty without one.
func (c *Cluster) KubeletCAFile() string {
	if c.realNode == nil {
		return ""
	}
	return c.realNode.servingCA
}

// startRealNode starts containerd and the kubelet and waits for the node to be Ready.
func (c *Cluster) startRealNode(ctx context.Context, cs kubernetes.Interface, opts RealNodeOptions, clientCA string) error {
	n := &realNode{opts: opts, dir: filepath.Join(c.Dir, "node")}
	c.realNode = n
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("clearing %s: %w", n.dir, err)
	}
	for _, d := range []string{"containerd", "certs.d", "cni", "cni-ipam", "kubelet", "pod-logs", "runc"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if err := saveSysctls(); err != nil {
		return err
	}
	if err := n.network(); err != nil {
		return err
	}
	if err := n.makeCgroups(); err != nil {
		return err
	}

	var err error
	if n.servingCA, n.servingCert, n.servingKey, err = kubeletServingCert(n.dir, n.ip); err != nil {
		return fmt.Errorf("making the kubelet's serving certificate: %w", err)
	}
	n.clientCAs = filepath.Join(n.dir, "kubelet-client-cas.crt")
	var bundle []byte
	for _, f := range []string{clientCA, filepath.Join(c.Env.ControlPlane.GetAPIServer().CertDir, "client-cert-auth-ca.crt")} {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading the client CAs the kubelet trusts: %w", err)
		}
		bundle = append(bundle, data...)
	}
	if err := os.WriteFile(n.clientCAs, bundle, 0o600); err != nil {
		return err
	}

	sock := filepath.Join(n.dir, "containerd", "containerd.sock")
	config, err := n.containerdConfig(sock)
	if err != nil {
		return err
	}
	ctrd, err := c.startProcess(ComponentContainerd, filepath.Join(opts.BinDir, ComponentContainerd),
		// containerd finds its shim, and the shim runc, on PATH.
		[]string{"PATH=" + opts.BinDir + ":/usr/sbin:/usr/bin:/sbin:/bin"}, "--config", config)
	if err != nil {
		return err
	}
	n.started = append(n.started, ctrd)
	if err := c.waitFor(ctx, "containerd's socket", func(context.Context) (bool, error) {
		_, err := os.Stat(sock)
		return err == nil, nil
	}, ComponentContainerd); err != nil {
		return err
	}
	n.sock = sock
	if err := c.startKubelet(filepath.Join(opts.BinDir, ComponentKubelet)); err != nil {
		return err
	}
	return c.waitFor(ctx, "the real node to become Ready", func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}, ComponentKubelet, ComponentContainerd)
}

// network creates the bridge the node's address is on (the first free fixity-rnN) and writes
// the CNI configuration that puts each pod on it.
func (n *realNode) network() error {
	var lastErr error
	for i := range realNodeNetworks {
		name := fmt.Sprintf("%s%d", realNodeBridgePrefix, i)
		// Creating the link is the lock: it fails if another cluster holds this index.
		if out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
			lastErr = fmt.Errorf("ip link add %s: %w: %s", name, err, out)
			continue
		}
		n.bridge = name
		n.ip, n.subnet = fmt.Sprintf("10.250.%d.1", i), fmt.Sprintf("10.250.%d.0/24", i)
		n.cgroup = fmt.Sprintf("%s%d", realNodeCgroupPrefix, i)
		break
	}
	if n.bridge == "" {
		return fmt.Errorf("no free bridge for the real node: %w", lastErr)
	}
	for _, args := range [][]string{
		{"addr", "add", n.ip + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		// Named after the bridge, so that Stop can find this network's files in libcni's cache.
		"name": n.bridge,
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": n.bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.subnet, "gateway": n.ip}}},
				"dataDir": filepath.Join(n.dir, "cni-ipam"),
			},
		}},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, "cni", "10-fixity.conflist"), data, 0o600)
}

// makeCgroups creates the kubelet's cgroup root in every v1 hierarchy (the kubelet refuses a
// root that does not exist), with cpuset's CPUs and memory nodes copied from the parent as
// cgroup v1 requires before any task can join.
func (n *realNode) makeCgroups() error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	for _, h := range hierarchies {
		if fi, err := os.Stat(h); err != nil || !fi.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue // not a hierarchy (the v2 root of a hybrid layout is handled the same way)
		}
		dir := filepath.Join(h, n.cgroup)
		killCgroup(dir) // left by a killed run
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		n.cgroups = append(n.cgroups, dir)
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("writing %s in %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

func (n *realNode) containerdConfig(sock string) (string, error) {
	for _, r := range n.opts.Registries {
		// The loopback registry serves plain HTTP.
		d := filepath.Join(n.dir, "certs.d", r)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
		body := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+r, "http://"+r)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(body), 0o600); err != nil {
			return "", err
		}
	}
	d := n.dir
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[5]q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[6]q

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  # The sandbox may lack CAP_SYS_RESOURCE (this machine's does): no oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %[7]q
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      Root = %[8]q
      SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), sock, sock+".ttrpc",
		n.opts.SandboxImage, filepath.Join(d, "certs.d"), filepath.Join(d, "cni"), filepath.Join(d, "runc"))
	p := filepath.Join(d, "containerd", "config.toml")
	return p, os.WriteFile(p, []byte(config), 0o600)
}

// startKubelet starts (or restarts) the kubelet of the real node from binary.
func (c *Cluster) startKubelet(binary string) error {
	n := c.realNode
	sock := n.sock
	port, err := freePortOn(n.ip)
	if err != nil {
		return err
	}
	healthz, err := FreePort()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization: {mode: Webhook}
tlsCertFile: %[9]q
tlsPrivateKeyFile: %[10]q
cgroupDriver: cgroupfs
cgroupRoot: /%[5]s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[6]s
podLogsDir: %[7]q
registerWithTaints:
- {key: %[8]s, value: "true", effect: NoSchedule}
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.available: "0%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 20
nodeStatusReportFrequency: 10s
`, n.ip, port, healthz, n.clientCAs, n.cgroup, sock, filepath.Join(n.dir, "pod-logs"), RealNodeTaint, n.servingCert, n.servingKey)
	p := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
		return err
	}
	k, err := c.startProcess(ComponentKubelet, binary, nil,
		"--config="+p,
		// The harness's kubelet uses the admin credential: the test cluster runs no Node
		// authorizer, and nothing under test trusts what a kubelet writes anyway.
		"--kubeconfig="+c.KubeconfigPath,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet", "pki"),
		"--hostname-override="+RealNodeName,
		"--node-ip="+n.ip,
		"--node-labels="+RealNodeLabel+"=true",
		"--v=2",
	)
	if err != nil {
		return err
	}
	n.started = append(n.started, k)
	n.kubelet = k
	return nil
}

// RestartKubelet stops the real node's kubelet and starts it again from binary, a program in
// RealNodeOptions.BinDir ("kubelet", or "kubelet-next", one patch release on), as an in-place
// kubelet upgrade would; the containers keep running. It returns once the node reports that
// kubelet's version and is Ready.
func (c *Cluster) RestartKubelet(ctx context.Context, binary string) error {
	n := c.realNode
	if n == nil {
		return errors.New("the cluster has no real node")
	}
	path := filepath.Join(n.opts.BinDir, binary)
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", path, err)
	}
	version := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes"))
	if err := n.kubelet.stop(stopTimeout); err != nil {
		return err
	}
	// Stopped on purpose: no longer a child whose exit fails the cluster.
	old := n.kubelet
	c.children = slices.DeleteFunc(c.children, func(ch *child) bool { return ch == old })
	n.started = slices.DeleteFunc(n.started, func(ch *child) bool { return ch == old })
	if err := c.startKubelet(path); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return c.waitFor(ctx, "the real node's kubelet "+version, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if node.Status.NodeInfo.KubeletVersion != version {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}, ComponentKubelet)
}

// freePortOn asks the kernel for a free port on ip.
func freePortOn(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", ip, err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop undoes startRealNode: the kubelet, every container process (by cgroup), the shims and
// containerd, the mounts under the node's directory, the cgroups, the bridge and the sysctls.
func (n *realNode) stop() error {
	var errs []error
	for i := len(n.started) - 1; i >= 0; i-- {
		if n.started[i].name == ComponentContainerd {
			// Containers first, while containerd still answers their shims.
			for _, cg := range n.cgroups {
				killCgroup(cg)
			}
			killShims(filepath.Join(n.dir, "containerd"))
		}
		if err := n.started[i].stop(stopTimeout); err != nil {
			errs = append(errs, err)
		}
		n.started[i].reported = true
	}
	for _, cg := range n.cgroups {
		killCgroup(cg)
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(n.dir); err != nil {
		errs = append(errs, err)
	}
	if n.bridge != "" {
		if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("removing bridge %s: %w: %s", n.bridge, err, out))
		}
	}
	// What the kubelet and libcni write outside their configured directories: the kubelet's
	// /var/log/containers links into its pod logs, libcni's cached results.
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, n.dir+"/") {
			_ = os.Remove(l)
		}
	}
	if n.bridge != "" {
		cached, _ := filepath.Glob("/var/lib/cni/results/" + n.bridge + "-*-eth0")
		for _, f := range cached {
			// <network>-<sandbox id>-<interface>; containerd's own loopback network has one too.
			id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), n.bridge+"-"), "-eth0")
			_ = os.Remove(f)
			_ = os.Remove("/var/lib/cni/results/cni-loopback-" + id + "-lo")
		}
	}
	if err := restoreSysctls(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RealNodeSysctlsFile holds the machine's kernelTunables from before the first real node started. With
// several clusters at once, only the first saw the true values and only the last may put them
// back: the file is written once and restored when no real node's bridge is left.
const RealNodeSysctlsFile = "/run/fixity-real-node-sysctls.json"

func saveSysctls() error {
	values := map[string]string{}
	for _, t := range kernelTunables {
		v, err := os.ReadFile(filepath.Join("/proc/sys", t))
		if err != nil {
			return fmt.Errorf("reading sysctl %s: %w", t, err)
		}
		values[t] = strings.TrimSpace(string(v))
	}
	data, err := json.Marshal(values)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(RealNodeSysctlsFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // another real node (or a killed run) saved them first
	}
	if err != nil {
		return fmt.Errorf("saving sysctls: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("saving sysctls: %w", err)
	}
	return f.Close()
}

func restoreSysctls() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, realNodeBridgePrefix) {
			return nil // another real node still runs
		}
	}
	data, err := os.ReadFile(RealNodeSysctlsFile)
	if err != nil {
		return fmt.Errorf("reading saved sysctls: %w", err)
	}
	values := map[string]string{}
	if err := json.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("reading saved sysctls %s: %w", RealNodeSysctlsFile, err)
	}
	var errs []error
	for t, v := range values {
		if err := os.WriteFile(filepath.Join("/proc/sys", t), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", t, v, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(RealNodeSysctlsFile))
	}
	return errors.Join(errs...)
}

// killCgroup kills every process in the cgroup dir and its children, and waits for them to go.
func killCgroup(dir string) {
	for range 50 {
		var pids []int
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for f := range strings.FieldsSeq(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroup removes dir and its children, deepest first.
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	var errs []error
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// killShims kills the runc shims containerd started for this node (they outlive containerd by
// design); they are found by the containerd address in their arguments.
func killShims(containerdDir string) {
	_ = eachProcess(func(pid int, argv []string) {
		if strings.HasSuffix(argv[0], "containerd-shim-runc-v2") && slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, containerdDir) }) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// unmountUnder detaches every mount below dir (rootfs overlays, shm, volumes, netns), deepest
// first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
