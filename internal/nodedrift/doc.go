// Package nodedrift holds what node drift is made of, apart from any controller: recording a
// node's baseline, comparing a node with it under the checks of the policies that match, the
// decision several policies come to (the most cautious action, the smallest budget), which pods
// a drain evicts, and where a node's provisioner is (a Karpenter NodeClaim, a Cluster API
// Machine).
package nodedrift
