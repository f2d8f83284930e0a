// Package crd embeds Fixity's generated CustomResourceDefinitions (bases/), so that a binary
// can apply their schemas (defaults, structural validation, CEL rules) without an API server.
package crd
