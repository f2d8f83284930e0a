package reconcile

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
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

// The kstatus conditions follow the deciding outcome, and go when it is settled again.
func TestSetConditions(t *testing.T) {
	var conds []metav1.Condition
	status := func(typ string) metav1.ConditionStatus {
		if c := meta.FindStatusCondition(conds, typ); c != nil {
			return c.Status
		}
		return "absent"
	}
	for _, tc := range []struct {
		name                        string
		o                           Outcome
		ready, stalled, reconciling metav1.ConditionStatus
	}{
		{"invalid spec", Invalid("InvalidSpec", errors.New("bad")), metav1.ConditionFalse, metav1.ConditionTrue, "absent"},
		{"retried", Fail(errors.New("api down")), metav1.ConditionFalse, "absent", metav1.ConditionTrue},
		{"waiting on a Secret", Wait(time.Minute, "AuthoritiesUnusable", "missing"), metav1.ConditionFalse, "absent", metav1.ConditionTrue},
		{"requeue only", Wait(time.Minute, "", ""), metav1.ConditionTrue, "absent", "absent"},
		{"active", Next(), metav1.ConditionTrue, "absent", "absent"},
	} {
		SetConditions(&conds, tc.o, 3, "enforced")
		if got := []metav1.ConditionStatus{status(fixityv1.ReadyCondition), status(fixityv1.StalledCondition), status(fixityv1.ReconcilingCondition)}; got[0] != tc.ready || got[1] != tc.stalled || got[2] != tc.reconciling {
			t.Errorf("%s: Ready, Stalled, Reconciling = %v, want %v %v %v", tc.name, got, tc.ready, tc.stalled, tc.reconciling)
		}
		for _, c := range conds {
			if c.ObservedGeneration != 3 {
				t.Errorf("%s: %s observedGeneration %d", tc.name, c.Type, c.ObservedGeneration)
			}
		}
	}
}
