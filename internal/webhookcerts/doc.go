// Package webhookcerts lets the operator provision its own webhook serving certificate in a
// cluster, so that an install needs neither cert-manager nor a hand-made Secret: a CA and a
// certificate for the webhook Service are kept in a Secret (open-policy-agent/cert-controller,
// as Gatekeeper does), the CA is injected into Fixity's webhook configurations, and the webhook
// server starts only once the kubelet has mounted the certificate.
package webhookcerts
