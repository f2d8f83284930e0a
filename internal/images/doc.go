// Package images is the image admission core: parsing references, checking them against
// allowedRegistries, resolving tags to digests through the registry (with the pod's pull
// secrets), pinning one resolution per owner so every pod of a ReplicaSet runs the same digest,
// and verifying cosign signatures against a policy's authorities, with verdicts cached per
// (image digest, policy generation) and concurrent verifications of one image shared.
//
// The crypto, signature formats and registry protocol are cosign's and go-containerregistry's;
// this package only decides which of their checks a policy asks for and turns their errors into
// messages a developer can act on.
package images
