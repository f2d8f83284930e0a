// Package grants answers "does an AccessGrant let this user do this to this pod now?" and
// records every access a grant lets through. A grant is active from its creation until
// creationTimestamp+duration, unless it is being deleted; only its requester (recorded by the
// AccessGrant webhook from the admission request) may use it. Activeness is computed from the
// grant itself, not from status, so access works the moment a grant exists and ends exactly at
// expiry even if the operator's controller lags.
package grants
