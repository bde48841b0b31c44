package observers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Condition is a compiled observer condition. It is safe for concurrent use.
//
// The language is expr-lang/expr with FraiseQL's condition language as a
// subset:
//
//   - the top-level fields of the event data are bare variables
//     (`status == 'shipped'`); a missing field is nil;
//   - dotted paths reach into nested objects (`customer.tier == 'gold'`); a
//     missing step yields nil instead of an error;
//   - `== != > < >= <=` compare numbers across int and float
//     (`100.00 == 100`); `&& || !` (or `and or not`), parentheses and
//     single-quoted strings;
//   - has_field('f'), field_changed('f'), field_changed_to('f', v),
//     field_changed_from('f', v);
//   - event.kind ("INSERT", …), event.entity_type, event.entity_id, event.id,
//     event.tenant_id, event.user_id — unless the data has its own "event"
//     field, which wins.
//
// A data field named like an expr builtin (count, type, date, values, …) is
// read as the field, not the builtin.
//
// A condition is at most ConditionMaxBytes long and nests at most
// ConditionMaxDepth levels, both checked before expr parses it; evaluating
// it fails rather than build a string longer than ConditionMaxStringBytes
// (+, repeat, replace, join, toJSON, string) or take more than
// ConditionMaxSteps predicate steps for one event.
type Condition struct {
	src  string
	prog *vm.Program
}

// Condition function names. Data fields of the same name are shadowed.
const (
	fnHasField         = "has_field"
	fnFieldChanged     = "field_changed"
	fnFieldChangedTo   = "field_changed_to"
	fnFieldChangedFrom = "field_changed_from"
	envEventKey        = "event"
)

// compileEnv describes the condition environment to the type checker: the
// functions with their signatures, and `event` as a map. Every other
// identifier is an (untyped) data field.
func compileEnv() map[string]any {
	return map[string]any{
		fnHasField:         func(string) bool { return false },
		fnFieldChanged:     func(string) bool { return false },
		fnFieldChangedTo:   func(string, any) bool { return false },
		fnFieldChangedFrom: func(string, any) bool { return false },
		envEventKey:        map[string]any{},
		fnStep:             func(v any) (any, error) { return v, nil },
	}
}

// CompileCondition compiles a condition. The result must be a boolean; an
// expression whose type is known not to be bool is rejected here, one whose
// type is only known at run time fails in Eval.
func CompileCondition(src string) (*Condition, error) {
	c, msg := compileCondition(src)
	if c == nil {
		return nil, errors.WithHint(errors.Newf("condition %s: %s", QuoteShort(src), msg), conditionHint)
	}
	return c, nil
}

const conditionHint = "conditions use expr syntax: status == 'new' && total > 100, has_field('f'), field_changed_to('status', 'shipped')"

// compileCondition compiles src; on failure it returns nil and a one-line
// message. The source is bounded first (checkConditionSource); the program
// is compiled twice, as written for the type checker, then with + checked
// (addPatcher) for evaluation.
func compileCondition(src string) (c *Condition, msg string) {
	if strings.TrimSpace(src) == "" {
		return nil, "condition is empty"
	}
	if msg := checkConditionSource(src); msg != "" {
		return nil, msg
	}
	defer func() { // the last line of defence: expr's compiler panicking
		if r := recover(); r != nil {
			c, msg = nil, fmt.Sprintf("the condition cannot be compiled: %v", r)
		}
	}()
	env := compileEnv()
	opts := append(stringBuiltinOptions(),
		expr.Env(env),
		expr.AllowUndefinedVariables(),
		expr.AsBool(),
		expr.Patch(&conditionPatcher{env: env}),
	)
	if _, err := expr.Compile(src, opts...); err != nil {
		return nil, conditionErrorMessage(err)
	}
	prog, err := expr.Compile(src, append(opts, expr.Patch(evalPatcher{}))...)
	if err != nil {
		return nil, conditionErrorMessage(err)
	}
	return &Condition{src: src, prog: prog}, ""
}

// conditionErrorMessage renders an expr error on one line, with its column,
// cut to conditionMessageMax characters: expr quotes what it could not
// read (a 16 KiB number literal, say).
func conditionErrorMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := Shorten(strings.TrimSpace(fe.Message), conditionMessageMax)
		if fe.Column > 0 || fe.Line > 1 {
			return fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
		}
		return msg
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return Shorten(msg, conditionMessageMax)
}

const conditionMessageMax = 240

// conditionPatcher rewrites the parsed expression before type checking:
// identifiers that name an expr builtin are read from the environment (so a
// data field `count` is not the builtin count), and every member access is
// nil-safe (`a.b.c` is nil when a is missing).
type conditionPatcher struct {
	env map[string]any
}

func (p *conditionPatcher) Visit(node *exprast.Node) {
	switch n := (*node).(type) {
	case *exprast.CallNode:
		// A call of a checked string builtin (stringBuiltins) names the
		// function, not a data field: undo the identifier's rewrite below.
		if m, ok := n.Callee.(*exprast.MemberNode); ok {
			if id, ok := m.Node.(*exprast.IdentifierNode); ok && id.Value == "$env" {
				if name, ok := m.Property.(*exprast.StringNode); ok && stringBuiltins[name.Value] != nil {
					n.Callee = &exprast.IdentifierNode{Value: name.Value}
				}
			}
		}
	case *exprast.IdentifierNode:
		if _, isEnv := p.env[n.Value]; isEnv || strings.HasPrefix(n.Value, "$") {
			return
		}
		if _, isBuiltin := builtin.Index[n.Value]; isBuiltin {
			exprast.Patch(node, &exprast.MemberNode{
				Node:     &exprast.IdentifierNode{Value: "$env"},
				Property: &exprast.StringNode{Value: n.Value},
			})
		}
	case *exprast.MemberNode:
		if id, ok := n.Node.(*exprast.IdentifierNode); ok && id.Value == "$env" {
			return
		}
		if n.Method {
			return
		}
		n.Optional = true
		exprast.Patch(node, &exprast.ChainNode{Node: n})
	}
}

// Source returns the condition as written.
func (c *Condition) Source() string { return c.src }

// String returns the condition as written.
func (c *Condition) String() string { return c.src }

// Eval evaluates the condition against an event. A runtime error (comparing
// a missing field with a number, say) returns false and the error: the caller
// logs it and treats the event as not matching.
func (c *Condition) Eval(ev *Event) (bool, error) {
	return c.EvalEnv(NewConditionEnv(ev))
}

// EvalEnv evaluates the condition in an environment built by
// NewConditionEnv, so that several conditions share the work of building it.
func (c *Condition) EvalEnv(env *ConditionEnv) (bool, error) {
	out, err := expr.Run(c.prog, env.vars)
	if err != nil {
		return false, errors.WithSecondaryError(
			errors.Newf("condition %s: %s", QuoteShort(c.src), conditionErrorMessage(err)), err)
	}
	b, ok := out.(bool)
	if !ok {
		if out == nil {
			return false, nil
		}
		return false, errors.Newf("condition %s: result is %T, not a boolean", QuoteShort(c.src), out)
	}
	return b, nil
}

// ConditionEnv is the evaluation environment of one event. Build it once
// per event with NewConditionEnv and pass it to EvalEnv for every observer.
// It is safe for concurrent use.
type ConditionEnv struct {
	ev      *Event
	vars    map[string]any
	once    sync.Once
	changes map[string]FieldChange
	steps   atomic.Int64 // predicate steps of this event's evaluations
}

// NewConditionEnv builds the evaluation environment of ev: its data fields,
// the `event` object and the condition functions.
func NewConditionEnv(ev *Event) *ConditionEnv {
	e := &ConditionEnv{ev: ev}
	vars := make(map[string]any, len(ev.Data)+5)
	for k, v := range ev.Data {
		vars[k] = v
	}
	if _, ok := vars[envEventKey]; !ok {
		vars[envEventKey] = eventMeta(ev)
	}
	vars[fnHasField] = e.hasField
	vars[fnFieldChanged] = e.fieldChanged
	vars[fnFieldChangedTo] = e.fieldChangedTo
	vars[fnFieldChangedFrom] = e.fieldChangedFrom
	vars[fnStep] = e.step
	e.vars = vars
	return e
}

// eventMeta is the `event` object seen by conditions and templates.
func eventMeta(ev *Event) map[string]any {
	return map[string]any{
		"id":          ev.ID,
		"kind":        string(ev.Kind),
		"entity_type": ev.EntityType,
		"entity_id":   ev.EntityID,
		"tenant_id":   ev.TenantID,
		"user_id":     ev.UserID,
	}
}

// step counts one predicate step (evalPatcher) of the event's evaluations
// and fails past ConditionMaxSteps.
func (e *ConditionEnv) step(v any) (any, error) {
	if e.steps.Add(1) > ConditionMaxSteps {
		return nil, errors.Newf("more than %d predicate steps for this event", ConditionMaxSteps)
	}
	return v, nil
}

func (e *ConditionEnv) changed() map[string]FieldChange {
	e.once.Do(func() { e.changes = e.ev.Changes() })
	return e.changes
}

func (e *ConditionEnv) hasField(name string) bool {
	_, ok := lookupPath(e.ev.Data, name, nil)
	return ok
}

func (e *ConditionEnv) fieldChanged(name string) bool {
	_, ok := e.changed()[name]
	return ok
}

func (e *ConditionEnv) fieldChangedTo(name string, v any) bool {
	ch, ok := e.changed()[name]
	return ok && valuesEqual(ch.New, v)
}

func (e *ConditionEnv) fieldChangedFrom(name string, v any) bool {
	ch, ok := e.changed()[name]
	return ok && valuesEqual(ch.Old, v)
}

// lookupPath finds name in data: first as a literal key (a field may have a
// dot in its name), then as a dotted path through nested objects. parts is
// name split on "." when the caller has it precomputed, else nil.
func lookupPath(data map[string]any, name string, parts []string) (any, bool) {
	if v, ok := data[name]; ok {
		return v, true
	}
	if parts == nil {
		if !strings.Contains(name, ".") {
			return nil, false
		}
		parts = strings.Split(name, ".")
	}
	if len(parts) < 2 {
		return nil, false
	}
	var cur any = data
	for _, part := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// valuesEqual compares two values the way a condition's == does: numbers by
// value whatever their Go type, everything else by JSON equality.
func valuesEqual(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if sa, ok := a.(string); ok {
		sb, ok := b.(string)
		return ok && sa == sb
	}
	return jsonEqual(a, b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int, int8, int16, int32, int64:
		return float64(reflect.ValueOf(n).Int()), true
	case uint, uint8, uint16, uint32, uint64:
		return float64(reflect.ValueOf(n).Uint()), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
