// Package accessgrant admits AccessGrants: on create it records the requester from the admission
// request (so a grant can never be made out to someone else), warns when the grant is not needed
// or names pods that do not exist, and afterwards lets nobody but the operator change the
// requester. It admits AccessApprovals the same way: the approver is whoever creates one, and an
// approval by the requester, by a name the requester can act as, or a second one by the same
// user is denied.
package accessgrant
