package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Exit codes.
const (
	exitDenied = 1
	exitError  = 2
)

// errDenied is returned by a command whose subject was denied: its output has said why.
var errDenied = errors.New("denied")

func main() {
	// The webhooks' code logs through controller-runtime; a command line answers in its output.
	log.SetLogger(logr.Discard())
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(run(os.Args[1:], streams))
}

// run runs the command line args and returns the exit code.
func run(args []string, streams genericiooptions.IOStreams) int {
	cmd := newRoot(streams)
	cmd.SetArgs(args)
	err := cmd.Execute()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errDenied):
		return exitDenied
	default:
		_, _ = fmt.Fprintln(streams.ErrOut, "error:", err)
		return exitError
	}
}

func newRoot(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-fixity",
		Short: "Test images and manifests against Fixity's policies, and use break-glass access",
		Long: "kubectl fixity runs Fixity's admission checks offline (verify, test) and works with a cluster's " +
			"AccessGrants and drift records (grant, approve, status).",
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl fixity",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(newVerify(streams), newTest(streams, flags), newGrant(streams, flags), newApprove(streams, flags), newStatus(streams, flags))
	return root
}
