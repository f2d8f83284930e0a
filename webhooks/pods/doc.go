// Package pods admits Pods: the mutating webhook pins image tags to digests (issue: image
// admission) and the validating webhook ("pods.fixity.dev") enforces the image and runtime rules
// of every matching ImmutabilityPolicy, including updates that add ephemeral containers.
package pods
