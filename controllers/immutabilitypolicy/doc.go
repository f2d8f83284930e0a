// Package immutabilitypolicy reconciles ImmutabilityPolicy objects: it checks what the schema
// cannot (selectors, regular expressions) and reports Ready with observedGeneration so that
// kstatus-based tools (Argo CD, Flux, kubectl wait) see when a policy is in force. Drift counts
// (matchedPods, driftedPods, replacedPods) and RemediationAllowed are added by the drift issue.
package immutabilitypolicy
