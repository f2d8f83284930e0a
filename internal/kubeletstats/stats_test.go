package kubeletstats

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// kubelet is a TLS server answering /stats/summary like a kubelet, for the token "t0ken".
func kubelet(t *testing.T, used *atomic.Uint64, status *atomic.Int32) (*httptest.Server, *corev1.Node) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats/summary" || r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		if code := status.Load(); code != 0 {
			http.Error(w, "broken", int(code))
			return
		}
		_ = json.NewEncoder(w).Encode(statsv1alpha1.Summary{Pods: []statsv1alpha1.PodStats{{
			PodRef: statsv1alpha1.PodReference{Name: "web", Namespace: "shop", UID: "uid-1"},
			Containers: []statsv1alpha1.ContainerStats{
				{Name: "app", Rootfs: &statsv1alpha1.FsStats{UsedBytes: ptr.To(used.Load()), InodesUsed: ptr.To[uint64](3)}},
				{Name: "starting"}, // no figure yet
			},
		}}})
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: host}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(p)}},
	}}
	return srv, node
}

func TestSummaryReadsTheWritableLayerWithTheManagersCredentials(t *testing.T) {
	var used atomic.Uint64
	var status atomic.Int32
	used.Store(4096)
	_, node := kubelet(t, &used, &status)
	c, err := NewClient(&rest.Config{BearerToken: "t0ken"}, "", true, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Summary(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	if got := s["uid-1"]; got.Pod.Name != "web" || len(got.Containers) != 1 || got.Containers["app"] != (Usage{UsedBytes: 4096, InodesUsed: 3}) {
		t.Errorf("summary %v: want app's 4096 bytes, and no figure for a container without one", s)
	}

	// Without skipping verification, the kubelet's certificate must be signed by a CA it trusts.
	strict, err := NewClient(&rest.Config{BearerToken: "t0ken"}, "", false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Summary(context.Background(), node); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an unverified kubelet certificate: %v", err)
	}
	// Another token is refused by the kubelet: an error naming the node and the answer.
	other, _ := NewClient(&rest.Config{BearerToken: "other"}, "", true, time.Second)
	if _, err := other.Summary(context.Background(), node); err == nil || !strings.Contains(err.Error(), "node n1: the kubelet answered 403") {
		t.Errorf("a refused read: %v", err)
	}
	if _, err := c.Summary(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}); err == nil || !strings.Contains(err.Error(), "node bare reports no InternalIP") {
		t.Errorf("a node without an address: %v", err)
	}
}

func TestPollerKeepsTheLastReadingAndNeverGuesses(t *testing.T) {
	var used atomic.Uint64
	var status atomic.Int32
	used.Store(4096)
	_, node := kubelet(t, &used, &status)
	c, _ := NewClient(&rest.Config{BearerToken: "t0ken"}, "", true, time.Second)
	clk := clocktesting.NewFakeClock(time.Now())
	var changed [][]types.NamespacedName
	p := &Poller{Client: c, Clock: clk, Period: 30 * time.Second,
		Nodes:   func(context.Context) ([]*corev1.Node, error) { return []*corev1.Node{node}, nil },
		Changed: func(_ string, pods []types.NamespacedName) { changed = append(changed, pods) }}
	ctx := context.Background()

	if _, err := p.Usage("n1", "uid-1"); !errors.Is(err, ErrNoReading) {
		t.Errorf("before any read: %v", err)
	}
	p.Poll(ctx)
	if u, err := p.Usage("n1", "uid-1"); err != nil || u["app"].UsedBytes != 4096 {
		t.Errorf("after a read: %v, %v", u, err)
	}
	if _, err := p.Usage("n1", "uid-2"); !errors.Is(err, ErrNoReading) {
		t.Errorf("a pod the reading does not list: %v", err)
	}
	p.Poll(ctx) // nothing changed: nobody is woken
	used.Store(8 << 20)
	p.Poll(ctx)
	if len(changed) != 2 || changed[1][0] != (types.NamespacedName{Namespace: "shop", Name: "web"}) {
		t.Errorf("woken for %v: want the first reading and the change", changed)
	}

	// A kubelet that fails: no figure at all, not the last one.
	status.Store(http.StatusInternalServerError)
	p.Poll(ctx)
	if _, err := p.Usage("n1", "uid-1"); !errors.Is(err, ErrNoReading) || !strings.Contains(err.Error(), "500") {
		t.Errorf("after a failed read: %v", err)
	}
	// A reading grown old is no evidence either.
	status.Store(0)
	p.Poll(ctx)
	clk.Step(91 * time.Second)
	if _, err := p.Usage("n1", "uid-1"); !errors.Is(err, ErrNoReading) {
		t.Errorf("a stale reading: %v", err)
	}
	// A node no longer read is forgotten.
	p.Nodes = func(context.Context) ([]*corev1.Node, error) { return nil, nil }
	p.Poll(ctx)
	if _, err := p.Usage("n1", "uid-1"); err == nil || !strings.Contains(err.Error(), "has not been read yet") {
		t.Errorf("a node no longer read: %v", err)
	}
}
