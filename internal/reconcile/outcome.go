package reconcile

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Kind is what a phase came to.
type Kind int

const (
	// Continue means this phase is satisfied; run the next.
	Continue Kind = iota
	// Done means nothing more to do for now; stop without requeue.
	Done
	// Waiting means something outside must happen first; look again after a while.
	Waiting
	// Retry means an error that may pass (the API server, a registry); requeue with backoff.
	Retry
	// Terminal means only an edit of the object can fix it; report, do not requeue.
	Terminal
)

// Outcome is the typed result of one phase.
type Outcome struct {
	Kind Kind
	// After is when to look again (Waiting).
	After time.Duration
	// Reason is the condition reason the outcome maps to, where the caller reports one.
	Reason string
	// Message explains it.
	Message string
	// Err is the error (Retry, Terminal).
	Err error
}

// Next goes on to the next phase.
func Next() Outcome { return Outcome{Kind: Continue} }

// Stop ends the reconcile without requeue.
func Stop() Outcome { return Outcome{Kind: Done} }

// Wait ends the reconcile and looks again after d.
func Wait(d time.Duration, reason, message string) Outcome {
	return Outcome{Kind: Waiting, After: d, Reason: reason, Message: message}
}

// Fail ends the reconcile with an error that is retried with backoff; nil is Next.
func Fail(err error) Outcome {
	if err == nil {
		return Next()
	}
	return Outcome{Kind: Retry, Err: err, Message: err.Error()}
}

// Invalid ends the reconcile with an error that only an edit fixes.
func Invalid(reason string, err error) Outcome {
	return Outcome{Kind: Terminal, Reason: reason, Err: err, Message: err.Error()}
}

// Result is the controller-runtime result of a final outcome.
func (o Outcome) Result() (ctrl.Result, error) {
	switch o.Kind {
	case Waiting:
		return ctrl.Result{RequeueAfter: o.After}, nil
	case Retry:
		return ctrl.Result{}, o.Err
	case Terminal:
		return ctrl.Result{}, reconcile.TerminalError(o.Err)
	}
	return ctrl.Result{}, nil
}

// Phase is one step of a reconcile over scope S.
type Phase[S any] func(ctx context.Context, s S) Outcome

// Run runs phases in order until one does not Continue, and returns that outcome (Done when
// all continue).
func Run[S any](ctx context.Context, s S, phases ...Phase[S]) Outcome {
	for _, p := range phases {
		if o := p(ctx, s); o.Kind != Continue {
			return o
		}
	}
	return Stop()
}

// IsTerminal reports whether err came from a Terminal outcome.
func IsTerminal(err error) bool { return errors.Is(err, reconcile.TerminalError(nil)) }

// Worst is the outcome that decides among phases that all ran (status reconcilers run every
// phase so the status is whole): a terminal one over a retry over a wait over going on. Errors of several
// retries are joined.
func Worst(outcomes ...Outcome) Outcome {
	out := Next()
	for _, o := range outcomes {
		switch {
		case o.Kind == Terminal && out.Kind != Terminal:
			out = o
		case o.Kind == Retry && out.Kind == Retry:
			out = Fail(errors.Join(out.Err, o.Err))
		case o.Kind == Retry && (out.Kind == Continue || out.Kind == Waiting):
			out = o
		case o.Kind == Waiting && out.Kind == Continue:
			out = o
		}
	}
	return out
}

// Ready is the Ready condition a status reconcile's deciding outcome comes to, for an object of
// generation gen: True (Active, message active) when it went on; False with the outcome's reason
// when only an edit can fix it; False (ReconcileError) when it is retried; False with the
// outcome's reason when it waits for something outside and names a reason.
func Ready(o Outcome, gen int64, active string) metav1.Condition {
	cond := metav1.Condition{
		Type: fixityv1.ReadyCondition, Status: metav1.ConditionTrue, Reason: fixityv1.ActiveReason,
		Message: active, ObservedGeneration: gen,
	}
	switch o.Kind {
	case Terminal:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, o.Reason, o.Message
	case Retry:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, fixityv1.ReconcileErrorReason, o.Message
	case Waiting:
		// Something outside the object must change first (a referenced object fixed).
		if o.Reason != "" {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, o.Reason, o.Message
		}
	}
	return cond
}

// Progress is where an object stands for kstatus.
type Progress int

const (
	// Settled means the object is as far as it goes: neither Stalled nor Reconciling (kstatus
	// reads Current, or InProgress from a False Ready alone).
	Settled Progress = iota
	// Progressing means retried, or waiting for something outside the object: kstatus InProgress.
	Progressing
	// Stalled means only an edit of the object helps: kstatus Failed.
	Stalled
)

// ProgressOf is the Progress of a status reconcile's deciding outcome.
func ProgressOf(o Outcome) Progress {
	switch {
	case o.Kind == Terminal:
		return Stalled
	case o.Kind == Retry, o.Kind == Waiting && o.Reason != "":
		return Progressing
	}
	return Settled
}

// SetReady sets ready on conds, with the kstatus conditions that go with progress: Stalled True
// (ready's reason and message) or Reconciling True, or neither.
func SetReady(conds *[]metav1.Condition, ready metav1.Condition, progress Progress) {
	meta.SetStatusCondition(conds, ready)
	for _, c := range []struct {
		typ string
		on  bool
	}{{fixityv1.StalledCondition, progress == Stalled}, {fixityv1.ReconcilingCondition, progress == Progressing}} {
		if !c.on {
			meta.RemoveStatusCondition(conds, c.typ)
			continue
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: c.typ, Status: metav1.ConditionTrue,
			Reason: ready.Reason, Message: ready.Message, ObservedGeneration: ready.ObservedGeneration})
	}
}

// SetConditions sets Ready (see Ready) and its kstatus conditions from a status reconcile's
// deciding outcome.
func SetConditions(conds *[]metav1.Condition, o Outcome, gen int64, active string) {
	SetReady(conds, Ready(o, gen, active), ProgressOf(o))
}
