package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/cache"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// Bounds on evaluating one condition: a policy author's expression must not make an admission
// slow, whatever the attestation holds.
const (
	conditionCostLimit = 1_000_000
	conditionTimeout   = time.Second
)

// Attestation is one compiled attestation rule of a policy.
type Attestation struct {
	// Name is "policy/attestation", as recorded in fixity.dev/verified.
	Name          string
	PredicateType string
	// authorities are the names ("policy/authority") that may sign it; empty, any.
	authorities []string
	conditions  []condition
}

type condition struct {
	expression, message string
	program             cel.Program
}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// conditionEnv is the CEL environment of attestation conditions: `predicate` and `statement`,
// both JSON values, and the string extensions.
func conditionEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		celEnv, celEnvErr = cel.NewEnv(
			cel.Variable("predicate", cel.DynType),
			cel.Variable("statement", cel.DynType),
			ext.Strings(),
		)
	})
	return celEnv, celEnvErr
}

// CompileAttestations compiles p's attestation rules, naming the field of a condition that does
// not compile or is not a boolean. It does no I/O, so the policy webhook and the policy
// controller call it as admission does.
func CompileAttestations(p *fixityv1.ImmutabilityPolicy) ([]Attestation, error) {
	v := p.Spec.Images.Verify
	if v == nil || len(v.Attestations) == 0 {
		return nil, nil
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	var errs []error
	out := make([]Attestation, 0, len(v.Attestations))
	for i, a := range v.Attestations {
		c := Attestation{Name: p.Name + "/" + a.Name, PredicateType: a.PredicateType}
		for _, n := range a.Authorities {
			c.authorities = append(c.authorities, p.Name+"/"+n)
		}
		for j, cond := range a.Conditions {
			field := fmt.Sprintf("spec.images.verify.attestations[%d].conditions[%d].expression", i, j)
			ast, iss := env.Compile(cond.Expression)
			if iss.Err() != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, iss.Err()))
				continue
			}
			if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
				errs = append(errs, fmt.Errorf("%s: must be a boolean, is %s", field, ast.OutputType()))
				continue
			}
			prg, err := env.Program(ast, cel.CostLimit(conditionCostLimit), cel.InterruptCheckFrequency(100))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
				continue
			}
			c.conditions = append(c.conditions, condition{expression: cond.Expression, message: cond.Message, program: prg})
		}
		out = append(out, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("policy %s: %w", p.Name, err)
	}
	return out, nil
}

// attestationsCache keeps compiled rules per policy generation.
var attestationsCache = cache.NewLRUExpireCache(256)

// compiledAttestations is CompileAttestations, once per policy generation.
func compiledAttestations(p *fixityv1.ImmutabilityPolicy) ([]Attestation, error) {
	key := scope(p)
	if c, ok := attestationsCache.Get(key); ok {
		return c.([]Attestation), nil
	}
	out, err := CompileAttestations(p)
	if err != nil {
		return nil, err
	}
	attestationsCache.Add(key, out, 24*time.Hour)
	return out, nil
}

// candidate is one attestation of the wanted predicate type, in either format: what to call
// it in messages, and how to verify it for an authority, giving the statement it holds.
type candidate struct {
	what   string
	verify func(au Authority) (map[string]any, error)
}

// candidates are the attestations in m of predicate type pt, bundles first, then the .att tag's.
func candidates(ctx context.Context, pt string, h v1.Hash, m *material) []candidate {
	var out []candidate
	for _, b := range m.bundles {
		if b.bundle == nil || b.predicateType != pt {
			continue
		}
		out = append(out, candidate{what: "bundle " + short(b.digest), verify: func(au Authority) (map[string]any, error) {
			res, err := verifyBundle(ctx, au, h, b.bundle)
			if err != nil {
				return nil, err
			}
			return statementMap(res.Statement)
		}})
	}
	for _, la := range m.attestations {
		if la.predicateType != pt {
			continue
		}
		out = append(out, candidate{what: "an attestation of the .att tag", verify: func(au Authority) (map[string]any, error) {
			co := au.opts
			// The statement's subject must be this digest, as for bundles.
			co.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
			if _, err := cosign.VerifyBlobAttestation(ctx, la.sig, h, &co); err != nil {
				return nil, err
			}
			return la.statement, nil
		}})
	}
	return out
}

// checkAttestation returns "" when one attestation in m, in either format, is of a's predicate
// type, signed by one of its authorities for h and meets every condition; else why not.
func checkAttestation(ctx context.Context, a Attestation, authorities []Authority, h v1.Hash, m *material) string {
	var signers []Authority
	for _, au := range authorities {
		if len(a.authorities) == 0 || slices.Contains(a.authorities, au.Name) {
			signers = append(signers, au)
		}
	}
	found := candidates(ctx, a.PredicateType, h, m)
	if len(found) == 0 {
		return fmt.Sprintf("no attestation of predicate type %s found", a.PredicateType)
	}
	var reasons []string
	for _, c := range found {
		var errs []error
		for _, au := range signers {
			statement, err := c.verify(au)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", au.Name, err))
				continue
			}
			failed, err := evaluateStatement(ctx, a, statement)
			if err != nil {
				return fmt.Sprintf("its conditions could not be evaluated: %v", err)
			}
			if failed == "" {
				return ""
			}
			reasons = append(reasons, "condition failed: "+failed)
			errs = nil
			break
		}
		if errs != nil {
			reasons = append(reasons, fmt.Sprintf("%s is not signed by an authority it allows (%s)", c.what, summarize(errs)))
		}
	}
	return summarize(stringErrors(reasons))
}

// statementMap is a verified in-toto statement as the JSON value conditions see.
func statementMap(st proto.Message) (map[string]any, error) {
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	var statement map[string]any
	if err := json.Unmarshal(raw, &statement); err != nil {
		return nil, err
	}
	return statement, nil
}

// evaluateStatement runs a's conditions on a verified statement, decoded from JSON.
func evaluateStatement(ctx context.Context, a Attestation, statement map[string]any) (string, error) {
	if len(a.conditions) == 0 {
		return "", nil
	}
	predicate := statement["predicate"]
	if predicate == nil {
		predicate = map[string]any{}
	}
	vars := map[string]any{"predicate": predicate, "statement": statement}
	ctx, cancel := context.WithTimeout(ctx, conditionTimeout)
	defer cancel()
	for _, c := range a.conditions {
		out, _, err := c.program.ContextEval(ctx, vars)
		msg := c.message
		if msg == "" {
			msg = c.expression
		}
		if err != nil {
			// A field the attestation lacks is a failed condition, not an error of the policy.
			return fmt.Sprintf("%q (%v)", msg, err), nil
		}
		if ok, isBool := out.Value().(bool); !isBool || !ok {
			return fmt.Sprintf("%q", msg), nil
		}
	}
	return "", nil
}

func stringErrors(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}
