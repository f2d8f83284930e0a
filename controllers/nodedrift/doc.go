// Package nodedrift is the node drift controller: it records each matched node's baseline in a
// NodeBaseline when the node is first Ready, compares the node with it on every change, and
// cordons, drains or hands over to Karpenter or Cluster API a node changed in place, within the
// policies' budgets and circuit breakers. It never deletes a Node.
package nodedrift
