// Package reports turns what Fixity found (admission rules judged on running pods, drift
// findings, node drift, the access review) into OpenReports results: one per object, policy and
// rule, bounded, with stable timestamps so that an unchanged report is not written again.
package reports
