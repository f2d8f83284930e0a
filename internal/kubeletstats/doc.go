// Package kubeletstats reads the writable-layer usage of containers from each kubelet's stats
// summary (GET /stats/summary, authorized as nodes/stats), for the WritableLayer drift check.
//
// The kubelet is read directly, never through the API server's node proxy: that needs
// nodes/proxy, which also allows exec. A Poller reads each node that needs reading at most once
// a period, with a timeout, and keeps the last reading; a node that cannot be read has no
// usable reading, so its pods stay undecided rather than drifted.
package kubeletstats
