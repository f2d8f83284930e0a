// Package workloads validates the pod templates of Deployments, StatefulSets, DaemonSets,
// ReplicaSets, Jobs and CronJobs by the same rules as Pods, so that `kubectl apply` or a GitOps
// sync fails with the policy's message. It never mutates workloads: GitOps tools own them.
package workloads
