package kubeletstats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

const (
	// DefaultPeriod is how often a node is read. The runtime refreshes the figure about every
	// 10 s, so reading faster sees nothing new.
	DefaultPeriod = 30 * time.Second
	// DefaultTimeout bounds one read of one kubelet.
	DefaultTimeout = 5 * time.Second
	// maxSummary bounds the body read from a kubelet: a summary of 110 pods is well under 1 MiB.
	maxSummary = 16 << 20
	// concurrency is how many kubelets are read at once.
	concurrency = 8
	// defaultKubeletPort is the kubelet's port when the node does not report one.
	defaultKubeletPort = 10250
)

// Usage is what one container wrote into its writable layer.
type Usage struct {
	// UsedBytes and InodesUsed are the container's rootfs figures: the runtime's snapshot usage
	// of its upper directory, that is files added or changed since it started, outside volumes.
	UsedBytes  uint64
	InodesUsed uint64
}

// Summary is one node's reading, per pod UID.
type Summary map[types.UID]PodUsage

// PodUsage is what one pod's containers wrote, by container name.
type PodUsage struct {
	Pod        types.NamespacedName
	Containers map[string]Usage
}

// Client reads stats summaries from kubelets.
type Client struct {
	// HTTP carries the manager's credentials and trusts the kubelets' serving CA.
	HTTP *http.Client
}

// NewClient returns a Client that authenticates as cfg does (its token or client certificate)
// and verifies kubelets against caFile, or skips verification with insecure. Without either,
// the API server's CA in cfg is trusted, which is right where kubelet serving certificates are
// signed by the cluster CA (serverTLSBootstrap).
func NewClient(cfg *rest.Config, caFile string, insecure bool, timeout time.Duration) (*Client, error) {
	c := rest.CopyConfig(cfg)
	// The API server's name is not the kubelet's: the kubelet's certificate names its own IP.
	c.ServerName = ""
	switch {
	case insecure:
		c.Insecure = true
		c.CAFile, c.CAData = "", nil
	case caFile != "":
		c.CAFile, c.CAData = caFile, nil
	}
	rt, err := rest.TransportFor(c)
	if err != nil {
		return nil, fmt.Errorf("building the kubelet client: %w", err)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{HTTP: &http.Client{Transport: rt, Timeout: timeout}}, nil
}

// Address is where node's kubelet serves: its InternalIP and reported port.
func Address(node *corev1.Node) (string, error) {
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = defaultKubeletPort
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return net.JoinHostPort(a.Address, strconv.Itoa(port)), nil
		}
	}
	return "", fmt.Errorf("node %s reports no InternalIP", node.Name)
}

// Summary reads node's stats summary.
func (c *Client) Summary(ctx context.Context, node *corev1.Node) (Summary, error) {
	addr, err := Address(node)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/stats/summary", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the stats of node %s: %w", node.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("reading the stats of node %s: the kubelet answered %s: %s", node.Name, resp.Status, body)
	}
	var s statsv1alpha1.Summary
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSummary)).Decode(&s); err != nil {
		return nil, fmt.Errorf("reading the stats of node %s: %w", node.Name, err)
	}
	out := Summary{}
	for _, p := range s.Pods {
		containers := map[string]Usage{}
		for _, ct := range p.Containers {
			if ct.Rootfs == nil || ct.Rootfs.UsedBytes == nil {
				continue // not reported yet: no figure, not zero
			}
			u := Usage{UsedBytes: *ct.Rootfs.UsedBytes}
			if ct.Rootfs.InodesUsed != nil {
				u.InodesUsed = *ct.Rootfs.InodesUsed
			}
			containers[ct.Name] = u
		}
		out[types.UID(p.PodRef.UID)] = PodUsage{Pod: types.NamespacedName{Namespace: p.PodRef.Namespace, Name: p.PodRef.Name}, Containers: containers}
	}
	return out, nil
}

// reading is the last read of one node.
type reading struct {
	at      time.Time
	summary Summary
	err     error
}

// Poller reads the nodes that need reading once a period and keeps the last reading of each.
// It runs on the leader only, like the drift controller it feeds.
type Poller struct {
	Client *Client
	// Nodes are the nodes to read this period (those running pods under a policy with
	// WritableLayer); none means nothing is read.
	Nodes func(ctx context.Context) ([]*corev1.Node, error)
	// Changed is told, after each read of a node, the pods whose usage changed since its last
	// read, for the drift controller to look at again.
	Changed func(node string, pods []types.NamespacedName)
	// Period is how often each node is read; 0 means DefaultPeriod.
	Period time.Duration
	// Clock is the poller's clock; nil means the real one.
	Clock clock.WithTicker

	mu       sync.Mutex
	readings map[string]reading
}

func (p *Poller) period() time.Duration {
	if p.Period == 0 {
		return DefaultPeriod
	}
	return p.Period
}

func (p *Poller) clock() clock.WithTicker {
	if p.Clock == nil {
		return clock.RealClock{}
	}
	return p.Clock
}

// Start reads every period until ctx ends (manager.Runnable).
func (p *Poller) Start(ctx context.Context) error {
	t := p.clock().NewTicker(p.period())
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// Poll reads each node that needs reading once, at most concurrency at a time.
func (p *Poller) Poll(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("kubeletstats")
	nodes, err := p.Nodes(ctx)
	if err != nil {
		log.Error(err, "Listing the nodes to read stats from")
		return
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, n := range nodes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := p.Client.Summary(ctx, n)
			p.record(ctx, n.Name, s, err)
		})
	}
	wg.Wait()
	p.forget(nodes)
}

// record keeps a reading and tells Changed which pods' usage changed; a failure is logged
// once per change of its message.
func (p *Poller) record(ctx context.Context, node string, s Summary, err error) {
	p.mu.Lock()
	if p.readings == nil {
		p.readings = map[string]reading{}
	}
	prev, had := p.readings[node]
	p.readings[node] = reading{at: p.clock().Now(), summary: s, err: err}
	p.mu.Unlock()
	if err != nil {
		if !had || prev.err == nil || prev.err.Error() != err.Error() {
			ctrl.LoggerFrom(ctx).Info("Kubelet stats cannot be read: its pods' WritableLayer check stays undecided", "node", node, "reason", err.Error())
		}
		return
	}
	var changed []types.NamespacedName
	for uid, pu := range s {
		if before, ok := prev.summary[uid]; !ok || !equal(before.Containers, pu.Containers) {
			changed = append(changed, pu.Pod)
		}
	}
	if len(changed) > 0 && p.Changed != nil {
		p.Changed(node, changed)
	}
}

func equal(a, b map[string]Usage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// forget drops the readings of nodes no longer read.
func (p *Poller) forget(nodes []*corev1.Node) {
	keep := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		keep[n.Name] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range p.readings {
		if !keep[name] {
			delete(p.readings, name)
		}
	}
}

// ErrNoReading is wrapped by Usage's errors: nothing current is known of the pod.
var ErrNoReading = errors.New("no current kubelet stats")

// Usage returns what the containers of pod uid on node wrote, from the last reading, which must
// be at most three periods old.
func (p *Poller) Usage(node string, uid types.UID) (map[string]Usage, error) {
	p.mu.Lock()
	r, ok := p.readings[node]
	p.mu.Unlock()
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: node %s has not been read yet", ErrNoReading, node)
	case r.err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNoReading, r.err)
	case p.clock().Since(r.at) > 3*p.period():
		return nil, fmt.Errorf("%w: node %s was last read at %s", ErrNoReading, node, r.at.Format(time.RFC3339))
	}
	pu, ok := r.summary[uid]
	if !ok {
		return nil, fmt.Errorf("%w: node %s's stats do not list the pod yet", ErrNoReading, node)
	}
	return pu.Containers, nil
}
