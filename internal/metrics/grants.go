package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// WatchGrants makes GrantsActive count the Active AccessGrants r holds (the manager's cache) at
// each scrape: a count read from the grants themselves cannot drift from them.
func WatchGrants(r client.Reader) { grantsActive.reader.Store(&r) }

// scrapeTimeout bounds the cache read of one scrape.
const scrapeTimeout = 5 * time.Second

var grantsActive = &grantsCollector{desc: prometheus.NewDesc(GrantsActiveName,
	"AccessGrants in phase Active (someone may exec into, attach to or debug the pods they name), by namespace.",
	[]string{"namespace"}, nil)}

type grantsCollector struct {
	desc   *prometheus.Desc
	reader atomic.Pointer[client.Reader]
}

func (c *grantsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *grantsCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.reader.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var list fixityv1.AccessGrantList
	if err := (*r).List(ctx, &list); err != nil {
		// No series rather than a false zero: the scrape shows the gap.
		return
	}
	active := map[string]int{}
	for i := range list.Items {
		if list.Items[i].Status.Phase == fixityv1.GrantActive {
			active[list.Items[i].Namespace]++
		}
	}
	for ns, n := range active {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), ns)
	}
}
