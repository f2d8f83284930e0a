package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fixity-dev/fixity/internal/operator"
)

// cluster is a client for the commands that work with a cluster, and the namespace they work in.
type cluster struct {
	client.Client
	namespace string
}

func connect(flags *genericclioptions.ConfigFlags) (*cluster, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return &cluster{Client: c, namespace: ns}, nil
}

// waitFor polls get until done says so or timeout passes; the operator writes status within a
// second or two. A timeout is not an error: the caller prints what it saw last.
func waitFor(ctx context.Context, timeout time.Duration, done func(context.Context) (bool, error)) error {
	if timeout <= 0 {
		return nil
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, done)
	if wait.Interrupted(err) {
		return nil
	}
	return err
}
