// Package workload finds the pod template inside the workload kinds that admission validates at
// apply time (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), so that a policy
// violation fails `kubectl apply` of the workload instead of a ReplicaSet silently failing later.
package workload
