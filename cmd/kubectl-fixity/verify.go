package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/manifests"
)

// verifyContainer is the container the image is tried in; messages name it.
const verifyContainer = "image"

func newVerify(streams genericiooptions.IOStreams) *cobra.Command {
	var policyFiles []string
	cmd := &cobra.Command{
		Use:   "verify IMAGE --policy FILE",
		Short: "Resolve an image and verify its signatures and attestations as the webhook would",
		Long: "verify runs the image rules of the ImmutabilityPolicies in FILE on IMAGE, without a cluster, through the " +
			"pod webhooks' own code: the digest rule (a tag is resolved, or refused under Require), allowedRegistries, " +
			"signatures (both cosign formats) and attestations. Each policy is applied as if it matched and were in " +
			"Enforce. It prints the digest and the authorities that verified it; exit 1 if denied.",
		Example: "  kubectl fixity verify ghcr.io/acme/web:1.4 --policy policies/production.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(policyFiles) == 0 {
				return fmt.Errorf("--policy is required")
			}
			l, err := load(cmd.Context(), policyFiles, nil, "default", false, streams.In)
			if err != nil {
				return err
			}
			for _, p := range l.Policies {
				p.Spec.Match = fixityv1.PolicyMatch{}
				p.Spec.Mode = fixityv1.ModeEnforce
			}
			e, err := newOffline(l.Store, authn.DefaultKeychain, true)
			if err != nil {
				return err
			}
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: verifyContainer, Image: args[0]}}}}
			pod.APIVersion, pod.Kind, pod.Name, pod.Namespace = "v1", "Pod", "fixity-verify", "default"
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
			if err != nil {
				return err
			}
			v, err := e.admit(cmd.Context(), manifests.Object{Unstructured: &unstructured.Unstructured{Object: u}, Source: "verify"})
			if err != nil {
				return err
			}
			if err := printVerified(streams.Out, args[0], v); err != nil {
				return err
			}
			if err := undecided([]verdict{v}); err != nil {
				return err
			}
			if !v.Allowed {
				return errDenied
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&policyFiles, "policy", nil, "Files or directories with the ImmutabilityPolicies (and the Secrets and ConfigMaps their authorities read)")
	return cmd
}

// printVerified prints what the webhooks recorded of the image (fixity.dev/verified), or why
// they denied it.
func printVerified(w io.Writer, image string, v verdict) error {
	_, _ = fmt.Fprintf(w, "image:     %s\n", image)
	if !v.Allowed {
		_, _ = fmt.Fprintln(w, "verdict:   denied")
		for _, d := range v.Denials {
			_, _ = fmt.Fprintf(w, "  %s\n", d)
		}
		return nil
	}
	// An allow is only evidence with the record the webhook wrote: without it, say nothing
	// about signers (it would read as "no policy requires signatures") and exit 2.
	if v.Pod == nil {
		return fmt.Errorf("%s: the webhooks allowed it but returned no pod to read the record from", image)
	}
	all, ok, err := admitted.ReadVerified(v.Pod)
	if err != nil {
		return fmt.Errorf("%s: reading the webhook's record (%s): %w", image, fixityv1.VerifiedAnnotation, err)
	}
	rec, found := all[verifyContainer]
	if !ok || !found {
		return fmt.Errorf("%s: the webhooks allowed it but wrote no record of it (%s)", image, fixityv1.VerifiedAnnotation)
	}
	_, _ = fmt.Fprintln(w, "verdict:   allowed")
	if rec.Image != "" {
		_, _ = fmt.Fprintf(w, "digest:    %s\n", rec.Image)
	}
	if len(rec.Authorities) == 0 {
		_, _ = fmt.Fprintln(w, "signed by: (no policy requires signatures)")
	}
	for _, a := range rec.Authorities {
		_, _ = fmt.Fprintf(w, "signed by: %s (%s)\n", a, rec.Formats[a])
	}
	if len(rec.Attestations) > 0 {
		_, _ = fmt.Fprintf(w, "attested:  %s\n", strings.Join(rec.Attestations, ", "))
	}
	for _, warn := range v.Warnings {
		_, _ = fmt.Fprintf(w, "  Warning: %s\n", warn)
	}
	return nil
}
