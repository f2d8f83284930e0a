// Package podconfig holds the pieces of spec.config.mutable (issue 17) that treat the
// ConfigMaps and Secrets a pod uses as part of what was deployed: it finds them in a pod spec
// (Used), hashes their data with a key only the operator holds (HMAC-SHA256, so a record never
// reveals the data; EnsureKey keeps the key in a Secret of the operator's namespace), caches
// them with their data dropped (NewCache, Transform), reads and writes the pod's record
// (fixity.dev/config), and tells which recorded objects changed or are gone (Store.Changed).
// The admission rules and the ConfigChange drift check that use them are not wired yet.
package podconfig
