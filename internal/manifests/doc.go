// Package manifests reads Kubernetes objects from files, as `kubectl apply -f` does (files,
// directories, "-" for stdin, multi-document YAML, JSON, v1 Lists), and admits Fixity's own
// kinds offline as the API server would: their CRD's defaults, unknown fields refused, the
// OpenAPI schema and its CEL rules, using the apiextensions-apiserver code the API server runs.
package manifests
