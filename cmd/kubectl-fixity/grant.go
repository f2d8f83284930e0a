package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// accessKinds are the --access values, as users type them.
var accessKinds = map[string]fixityv1.AccessKind{
	"exec": fixityv1.AccessExec, "attach": fixityv1.AccessAttach,
	"port-forward": fixityv1.AccessPortForward, "portforward": fixityv1.AccessPortForward,
	"debug": fixityv1.AccessDebug,
}

func parseAccess(values []string) ([]fixityv1.AccessKind, error) {
	var out []fixityv1.AccessKind
	seen := map[fixityv1.AccessKind]bool{}
	for _, v := range values {
		k, ok := accessKinds[strings.ToLower(v)]
		if !ok {
			return nil, fmt.Errorf("--access %q: use exec, attach, port-forward or debug", v)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

type grantOptions struct {
	access   []string
	duration time.Duration
	reason   string
	name     string
	wait     time.Duration
}

func newGrant(streams genericiooptions.IOStreams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	o := &grantOptions{}
	cmd := &cobra.Command{
		Use:   `grant POD... --access exec --for 15m --reason "..."`,
		Short: "Ask for break-glass access to pods: create an AccessGrant",
		Long: "grant creates an AccessGrant for you into the named pods of the namespace, for a while, with a reason " +
			"for the audit trail. Where a policy asks for approvals the grant stays Pending until other users run " +
			"`kubectl fixity approve`. Every pod you then enter is replaced when the grant ends.",
		Example: `  kubectl fixity grant web-7d4b9 -n shop --access exec --for 15m --reason "INC-1234: read the cache state"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			access, err := parseAccess(o.access)
			if err != nil {
				return err
			}
			c, err := connect(flags)
			if err != nil {
				return err
			}
			g := &fixityv1.AccessGrant{
				ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: o.name},
				Spec: fixityv1.AccessGrantSpec{Pods: args, Access: access, Duration: &metav1.Duration{Duration: o.duration},
					Reason: o.reason},
			}
			if o.name == "" {
				g.GenerateName = args[0] + "-"
			}
			if err := c.Create(cmd.Context(), g); err != nil {
				return fmt.Errorf("creating the AccessGrant: %w", err)
			}
			_, _ = fmt.Fprintf(streams.Out, "accessgrant.fixity.dev/%s created in namespace %s\n", g.Name, g.Namespace)
			if err := waitFor(cmd.Context(), o.wait, grantDecided(c, g)); err != nil {
				return err
			}
			printGrant(streams.Out, g)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&o.access, "access", []string{"exec"}, "Kinds of access: exec, attach, port-forward, debug")
	cmd.Flags().DurationVar(&o.duration, "for", 5*time.Minute, "How long the grant is active once usable (at most 1h)")
	cmd.Flags().StringVar(&o.reason, "reason", "", "Why the access is needed, for the audit trail (at least 10 characters)")
	cmd.Flags().StringVar(&o.name, "name", "", "Name of the AccessGrant (default: generated from the first pod's)")
	cmd.Flags().DurationVar(&o.wait, "wait", 10*time.Second, "How long to wait for the operator to decide the grant (0: do not wait)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// grantDecided reads g until the operator has given it a phase other than a fresh Pending that
// it has not yet counted approvals for.
func grantDecided(c *cluster, g *fixityv1.AccessGrant) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(g), g); err != nil {
			return false, fmt.Errorf("reading AccessGrant %s/%s: %w", g.Namespace, g.Name, err)
		}
		return g.Status.ObservedGeneration == g.Generation && g.Status.Phase != "", nil
	}
}

// printGrant says where a grant is and what comes next.
func printGrant(w io.Writer, g *fixityv1.AccessGrant) {
	switch g.Status.Phase {
	case "":
		_, _ = fmt.Fprintln(w, "phase: not decided yet; see `kubectl get accessgrant "+g.Name+" -n "+g.Namespace+"`")
	case fixityv1.GrantPending:
		_, _ = fmt.Fprintf(w, "phase: Pending, %d of %d approvals; an approver runs: kubectl fixity approve %s -n %s\n",
			len(g.Status.Approvals), g.Status.RequiredApprovals, g.Name, g.Namespace)
	case fixityv1.GrantActive:
		until := ""
		if g.Status.ExpiresAt != nil {
			until = " until " + g.Status.ExpiresAt.UTC().Format(time.RFC3339)
		}
		_, _ = fmt.Fprintf(w, "phase: Active%s, for %s into %s\n", until, joinAccess(g.Spec.Access), strings.Join(g.Spec.Pods, ", "))
	default:
		_, _ = fmt.Fprintf(w, "phase: %s%s\n", g.Status.Phase, readyMessage(g.Status.Conditions))
	}
}

func joinAccess(kinds []fixityv1.AccessKind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// readyMessage is ": MESSAGE" of the Ready condition, or "".
func readyMessage(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == fixityv1.ReadyCondition && c.Message != "" {
			return ": " + c.Message
		}
	}
	return ""
}

func newApprove(streams genericiooptions.IOStreams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "approve GRANT",
		Short: "Approve another user's AccessGrant: create an AccessApproval",
		Long: "approve creates an AccessApproval of the grant as you. The requester cannot approve their own grant, " +
			"nor can one user approve twice.",
		Example: "  kubectl fixity approve web-7d4b9-x2x8k -n shop",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(flags)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			g := &fixityv1.AccessGrant{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: args[0]}, g); err != nil {
				return fmt.Errorf("reading AccessGrant %s/%s: %w", c.namespace, args[0], err)
			}
			a := &fixityv1.AccessApproval{
				ObjectMeta: metav1.ObjectMeta{Namespace: g.Namespace, GenerateName: g.Name + "-"},
				Spec:       fixityv1.AccessApprovalSpec{Grant: g.Name},
			}
			if err := c.Create(ctx, a); err != nil {
				return fmt.Errorf("approving AccessGrant %s/%s: %w", g.Namespace, g.Name, err)
			}
			_, _ = fmt.Fprintf(streams.Out, "accessapproval.fixity.dev/%s created: approves %s (requested by %s: %s)\n",
				a.Name, g.Name, g.Status.Requester, g.Spec.Reason)
			approvals := len(g.Status.Approvals)
			if err := waitFor(ctx, waitTimeout, func(ctx context.Context) (bool, error) {
				if err := c.Get(ctx, client.ObjectKeyFromObject(g), g); err != nil {
					return false, fmt.Errorf("reading AccessGrant %s/%s: %w", g.Namespace, g.Name, err)
				}
				return len(g.Status.Approvals) > approvals || g.Status.Phase != fixityv1.GrantPending, nil
			}); err != nil {
				return err
			}
			printGrant(streams.Out, g)
			return nil
		},
	}
	cmd.Flags().DurationVar(&waitTimeout, "wait", 10*time.Second, "How long to wait for the grant to count the approval (0: do not wait)")
	return cmd
}
