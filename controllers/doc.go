// Package controllers wires Fixity's reconcilers into a manager (Setup), one sub-package per
// reconciler: immutabilitypolicy (a policy's status: Ready, counts, breaker, held pods),
// accessgrant (a grant's phase and expiry), drift (detects drifted pods and replaces them
// safely) and recreate (brings drifted bare pods back from their saved spec).
package controllers
