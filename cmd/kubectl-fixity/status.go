package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/internal/admitted"
	"github.com/fixity-dev/fixity/internal/podconfig"
	"github.com/fixity-dev/fixity/internal/policy"
)

// eventSource is the name the operator's events are reported under.
const eventSource = "fixity"

func newStatus(streams genericiooptions.IOStreams, flags *genericclioptions.ConfigFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status POD|pod/NAME|node/NAME",
		Short: "Show what Fixity recorded and found for a pod or a node",
		Long: "status shows, for a pod, the policies that match it, what was verified when it was admitted " +
			"(fixity.dev/verified), whether its spec is still the admitted one, its config record, why it is tainted, " +
			"and the operator's events about it (drift found, replacements); for a node, its NodeBaseline (recorded " +
			"and observed), Fixity's taint, and the operator's events. A bare name is a pod.",
		Example: "  kubectl fixity status web-7d4b9 -n shop\n  kubectl fixity status node/worker-3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(flags)
			if err != nil {
				return err
			}
			kind, name, found := strings.Cut(args[0], "/")
			if !found {
				kind, name = "pod", args[0]
			}
			switch strings.ToLower(kind) {
			case "pod", "pods", "po":
				return podStatus(cmd.Context(), streams.Out, c, name)
			case "node", "nodes", "no":
				return nodeStatus(cmd.Context(), streams.Out, c, name)
			}
			return fmt.Errorf("%q: status takes a pod or a node (pod/NAME, node/NAME)", args[0])
		},
	}
}

func podStatus(ctx context.Context, w io.Writer, c *cluster, name string) error {
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, pod); err != nil {
		return fmt.Errorf("reading pod %s/%s: %w", c.namespace, name, err)
	}
	_, _ = fmt.Fprintf(w, "Pod %s/%s\n", pod.Namespace, pod.Name)
	m := &policy.Matcher{Reader: c}
	if ps, err := m.ForPod(ctx, pod.Namespace, pod.Labels); err != nil {
		_, _ = fmt.Fprintf(w, "  policies:  unknown (%v)\n", err)
	} else {
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = fmt.Sprintf("%s (%s)", p.Name, p.Spec.Mode)
		}
		_, _ = fmt.Fprintf(w, "  policies:  %s\n", orNone(strings.Join(names, ", ")))
	}
	verified, ok, err := admitted.ReadVerified(pod)
	switch {
	case err != nil:
		_, _ = fmt.Fprintf(w, "  verified:  unreadable (%v)\n", err)
	case !ok:
		_, _ = fmt.Fprintln(w, "  verified:  no record: not admitted under a policy")
	default:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range verified {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			img := verified[k]
			signed := "no signature required"
			if len(img.Authorities) > 0 {
				var by []string
				for _, a := range img.Authorities {
					by = append(by, fmt.Sprintf("%s (%s)", a, img.Formats[a]))
				}
				signed = "signed by " + strings.Join(by, ", ")
			}
			if len(img.Attestations) > 0 {
				signed += "; attested " + strings.Join(img.Attestations, ", ")
			}
			_, _ = fmt.Fprintf(w, "  container %s: %s, %s\n", k, img.Image, signed)
		}
	}
	if recorded, ok := pod.Annotations[fixityv1.SpecHashAnnotation]; ok {
		now, err := admitted.SpecHash(pod)
		switch {
		case err != nil:
			_, _ = fmt.Fprintf(w, "  spec:      unreadable (%v)\n", err)
		case now == recorded:
			_, _ = fmt.Fprintln(w, "  spec:      as admitted")
		default:
			_, _ = fmt.Fprintln(w, "  spec:      differs from the admitted spec (fixity.dev/spec-hash)")
		}
	}
	if rec, ok, err := podconfig.ReadRecord(pod); ok {
		if err != nil {
			_, _ = fmt.Fprintf(w, "  config:    unreadable (%v)\n", err)
		} else {
			var objs []string
			for _, e := range rec.Entries() {
				objs = append(objs, e.Kind+" "+e.Name)
			}
			_, _ = fmt.Fprintf(w, "  config:    recorded %s\n", strings.Join(objs, ", "))
		}
	}
	if t, ok := pod.Annotations[fixityv1.TaintedAnnotation]; ok {
		_, _ = fmt.Fprintf(w, "  tainted:   %s (the pod is replaced once the access ends)\n", t)
	}
	return printEvents(ctx, w, c, pod.Namespace, "Pod", pod.Name)
}

func nodeStatus(ctx context.Context, w io.Writer, c *cluster, name string) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return fmt.Errorf("reading node %s: %w", name, err)
	}
	_, _ = fmt.Fprintf(w, "Node %s\n", node.Name)
	b := &fixityv1.NodeBaseline{}
	err := c.Get(ctx, client.ObjectKey{Name: name}, b)
	switch {
	case apierrors.IsNotFound(err):
		_, _ = fmt.Fprintln(w, "  baseline:  none (no NodeImmutabilityPolicy matches the node, or it is not Ready yet)")
	case err != nil:
		_, _ = fmt.Fprintf(w, "  baseline:  unreadable (%v)\n", err)
	case b.Spec.NodeUID != string(node.UID):
		_, _ = fmt.Fprintf(w, "  baseline:  of another node of the same name (UID %s); a new one is recorded\n", b.Spec.NodeUID)
	default:
		info := node.Status.NodeInfo
		_, _ = fmt.Fprintf(w, "  baseline:  recorded %s, phase %s\n", b.Spec.RecordedAt.UTC().Format(time.RFC3339), orNone(string(b.Status.Phase)))
		for _, row := range [][3]string{
			{"kernel", b.Spec.NodeInfo.KernelVersion, info.KernelVersion},
			{"OS image", b.Spec.NodeInfo.OSImage, info.OSImage},
			{"kubelet", b.Spec.NodeInfo.KubeletVersion, info.KubeletVersion},
			{"runtime", b.Spec.NodeInfo.ContainerRuntimeVersion, info.ContainerRuntimeVersion},
		} {
			mark := ""
			if row[1] != row[2] {
				mark = "  (changed in place)"
			}
			_, _ = fmt.Fprintf(w, "  %-9s  recorded %q, now %q%s\n", row[0]+":", row[1], row[2], mark)
		}
		for _, f := range b.Status.Drifted {
			_, _ = fmt.Fprintf(w, "  drift:     %s: recorded %q, observed %q, since %s\n", f.Check, f.Recorded, f.Observed, f.Since.UTC().Format(time.RFC3339))
		}
		if b.Status.Message != "" {
			_, _ = fmt.Fprintf(w, "  message:   %s\n", b.Status.Message)
		}
	}
	for _, t := range node.Spec.Taints {
		if t.Key == fixityv1.DriftedTaint {
			_, _ = fmt.Fprintf(w, "  taint:     %s=%s:%s\n", t.Key, t.Value, t.Effect)
		}
	}
	return printEvents(ctx, w, c, corev1.NamespaceDefault, "Node", node.Name)
}

// printEvents lists the operator's events about an object, oldest first.
func printEvents(ctx context.Context, w io.Writer, c *cluster, namespace, kind, name string) error {
	var list corev1.EventList
	sel := fields.SelectorFromSet(fields.Set{"involvedObject.kind": kind, "involvedObject.name": name})
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		_, _ = fmt.Fprintf(w, "  events:    unreadable (%v)\n", err)
		return nil
	}
	var ours []corev1.Event
	for _, e := range list.Items {
		if e.ReportingController == eventSource || e.Source.Component == eventSource {
			ours = append(ours, e)
		}
	}
	if len(ours) == 0 {
		_, _ = fmt.Fprintln(w, "  events:    none from Fixity")
		return nil
	}
	slices.SortFunc(ours, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	_, _ = fmt.Fprintln(w, "  events:")
	for _, e := range ours {
		_, _ = fmt.Fprintf(w, "    %s  %s  %s\n", eventTime(e).UTC().Format(time.RFC3339), e.Reason, e.Message)
	}
	return nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
