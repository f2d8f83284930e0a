// Package metrics holds every Prometheus metric the operator exports, by name, registered once
// with controller-runtime's registry (served on --metrics-bind-address). Tests and dashboards
// use the name constants.
package metrics
