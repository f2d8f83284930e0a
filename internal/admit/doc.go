// Package admit is what every admission concern shares: a Violation (one broken rule of one
// policy), the Check interface that concerns implement for pods and pod templates, and Response,
// which turns violations into the answer the user sees: a denial listing one line per Enforce
// violation, or warnings for Audit ones, each naming the policy, the container and the fix.
package admit
