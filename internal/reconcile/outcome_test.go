package reconcile

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRunStopsAtTheFirstPhaseThatDoesNotGoOn(t *testing.T) {
	var ran []string
	phase := func(name string, o Outcome) Phase[*[]string] {
		return func(_ context.Context, s *[]string) Outcome { *s = append(*s, name); return o }
	}
	o := Run(context.Background(), &ran, phase("a", Next()), phase("b", Wait(time.Second, "R", "m")), phase("c", Next()))
	if o.Kind != Waiting || len(ran) != 2 {
		t.Fatalf("outcome %+v after %v", o, ran)
	}
	if res, err := o.Result(); err != nil || res.RequeueAfter != time.Second {
		t.Fatalf("Result = %+v, %v", res, err)
	}
	if o := Run(context.Background(), &ran); o.Kind != Done {
		t.Fatalf("no phases: %+v", o)
	}
}

func TestResultAndWorst(t *testing.T) {
	boom, bad := errors.New("boom"), errors.New("bad spec")
	if _, err := Fail(boom).Result(); !errors.Is(err, boom) || IsTerminal(err) {
		t.Fatalf("a retry: %v", err)
	}
	if _, err := Invalid("InvalidSpec", bad).Result(); !IsTerminal(err) {
		t.Fatalf("a terminal outcome is a terminal error: %v", err)
	}
	if Fail(nil).Kind != Continue {
		t.Fatal("Fail(nil) goes on")
	}
	if o := Worst(Next(), Fail(boom), Invalid("InvalidSpec", bad), Fail(boom)); o.Kind != Terminal || o.Reason != "InvalidSpec" {
		t.Fatalf("a terminal outcome decides: %+v", o)
	}
	other := errors.New("other")
	if o := Worst(Fail(boom), Next(), Fail(other)); o.Kind != Retry || !errors.Is(o.Err, boom) || !errors.Is(o.Err, other) {
		t.Fatalf("retries are joined: %+v", o)
	}
	if o := Worst(Next(), Next()); o.Kind != Continue {
		t.Fatalf("all go on: %+v", o)
	}
}

func TestReady(t *testing.T) {
	if c := Ready(Next(), 3, "enforced"); c.Status != "True" || c.Reason != "Active" || c.Message != "enforced" || c.ObservedGeneration != 3 {
		t.Fatalf("going on: %+v", c)
	}
	if c := Ready(Invalid("InvalidSpec", errors.New("spec.x: bad")), 3, "enforced"); c.Status != "False" || c.Reason != "InvalidSpec" || c.Message != "spec.x: bad" {
		t.Fatalf("terminal: %+v", c)
	}
	if c := Ready(Fail(errors.New("boom")), 3, "enforced"); c.Status != "False" || c.Reason != "ReconcileError" {
		t.Fatalf("retried: %+v", c)
	}
}
