package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

type testOptions struct {
	manifests, policies []string
	output              string
}

func newTest(streams genericiooptions.IOStreams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &testOptions{}
	cmd := &cobra.Command{
		Use:   "test -f MANIFESTS --policy FILES",
		Short: "Admit Pods and workload templates against policies offline, as the webhooks would",
		Long: "test evaluates every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob in MANIFESTS " +
			"against the ImmutabilityPolicies in FILES, without a cluster, through Fixity's own admission webhooks, " +
			"and prints exactly the denials and warnings `kubectl apply` would show. Namespaces, Secrets and ConfigMaps " +
			"in either set of files are read as the cluster's (namespace labels for policy selectors, keys, " +
			"config.mutable). Images are resolved and verified against their registries. Exit 1 if anything is denied, " +
			"2 if something could not be decided.\n\n" +
			"Offline differs from the cluster in what it cannot see: each object is admitted alone (no tag pins shared " +
			"with an owner), registries are read with your own credentials (docker/podman login), not the pod's pull " +
			"secrets, and the API server's own defaulting and validation of Pods and metadata are not run; a namespace " +
			"no file defines has only its kubernetes.io/metadata.name label.",
		Example: `  kubectl fixity test -f deploy/ --policy policies/production.yaml
  kustomize build overlays/prod | kubectl fixity test -f - --policy policies/ -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.manifests) == 0 || len(o.policies) == 0 {
				return fmt.Errorf("both -f and --policy are required")
			}
			if o.output != "" && o.output != "json" {
				return fmt.Errorf("unknown output format %q: only json", o.output)
			}
			// As kubectl apply: -n, else the kubeconfig context's namespace, else default.
			namespace, explicit, err := flags.ToRawKubeConfigLoader().Namespace()
			if err != nil {
				return fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
			}
			l, err := load(cmd.Context(), o.policies, o.manifests, namespace, explicit, streams.In)
			if err != nil {
				return err
			}
			e, err := newOffline(l.Store, authn.DefaultKeychain, false)
			if err != nil {
				return err
			}
			var verdicts []verdict
			for _, s := range l.Subjects {
				v, err := e.admit(cmd.Context(), s)
				if err != nil {
					return err
				}
				verdicts = append(verdicts, v)
			}
			if err := printVerdicts(streams.Out, o.output, verdicts); err != nil {
				return err
			}
			if err := undecided(verdicts); err != nil {
				return err
			}
			for _, v := range verdicts {
				if !v.Allowed {
					return errDenied
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&o.manifests, "filename", "f", nil, "Manifests to test: files, directories, or - for stdin")
	cmd.Flags().StringSliceVar(&o.policies, "policy", nil, "Files or directories with the ImmutabilityPolicies (and the Secrets, ConfigMaps and Namespaces they read)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: json")
	return cmd
}

// printVerdicts prints one block per object: its verdict, then the denial's lines and the
// warnings as kubectl shows them; or, with json, {"results": [...]}.
func printVerdicts(w io.Writer, output string, verdicts []verdict) error {
	if output == "json" {
		if verdicts == nil {
			verdicts = []verdict{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Results []verdict `json:"results"`
		}{verdicts})
	}
	if len(verdicts) == 0 {
		_, err := fmt.Fprintln(w, "No Pod or workload in the manifests.")
		return err
	}
	for _, v := range verdicts {
		word := "allowed"
		switch {
		case !v.Allowed:
			word = "denied"
		case len(v.Policies) == 0:
			// An allow by no policy is no evidence: say so, so a wrong namespace or selector shows.
			word = "not covered by any policy"
		}
		if _, err := fmt.Fprintf(w, "%s %s/%s: %s\n", v.Kind, v.Namespace, v.Name, word); err != nil {
			return err
		}
		for _, d := range v.Denials {
			_, _ = fmt.Fprintf(w, "  %s\n", d)
		}
		for _, warn := range v.Warnings {
			_, _ = fmt.Fprintf(w, "  Warning: %s\n", warn)
		}
	}
	return nil
}
