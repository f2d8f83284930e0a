// Package accessapproval reports on each AccessApproval whether it counts for its grant: its
// approver (recorded by the webhook) and a Ready condition saying why not when it does not. The
// grant's own controller counts the approvals; this one only tells the approver.
package accessapproval
