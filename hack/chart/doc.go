// Command chart writes the Helm chart's templates (charts/fixity/templates) from the kustomize
// render of config/default on stdin, so that the chart and kustomize install the same objects
// from one source: `make manifests` runs it. Only the image and the replica count become
// values; the namespace stays fixity-system, which the webhooks exempt.
package main
