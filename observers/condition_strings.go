package observers

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// expr bounds the lists a condition builds (its memory budget) but not
// the strings: `reduce(1..40, #acc + #acc, 'x')` doubles a string forty
// times, `repeat(s, 999999)` of a long s allocates before expr checks.
// Each operation that builds a string is therefore checked first: its
// result may not be longer than ConditionMaxStringBytes, else evaluating
// the condition fails (the event does not match, as for any runtime error).
// Nor does expr bound time: predicates nested over the event's own lists
// (all(items, any(items, …))) take the product of their lengths, so the
// predicate steps of one event's evaluations are counted and stop at
// ConditionMaxSteps.

// fnAdd is the + operator of an evaluated condition, fnStep the counter of
// predicate steps (see evalPatcher).
const (
	fnAdd  = "$add"
	fnStep = "$step"
)

// errStringTooLong is the error of a string-building operation past the limit.
func errStringTooLong(op string) error {
	return fmt.Errorf("%s: the result would be longer than %s", op, byteSize(ConditionMaxStringBytes))
}

// stringBuiltins are expr's builtins that build strings, each checked by a
// function that measures its result before the builtin builds it.
var stringBuiltins = map[string]func(args []any) error{
	"repeat":  repeatFits,
	"replace": replaceFits,
	"join":    joinFits,
	"toJSON":  func(args []any) error { return sizeFits("toJSON", args) },
	"string":  func(args []any) error { return sizeFits("string", args) },
}

// stringBuiltinOptions replace those builtins by checked ones with the
// same names, types and results.
func stringBuiltinOptions() []expr.Option {
	var opts []expr.Option
	for name, fits := range stringBuiltins {
		orig := builtin.Builtins[builtin.Index[name]]
		call := orig.Func
		switch {
		case orig.Safe != nil: // repeat: its memory count is ours to do
			call = func(args ...any) (any, error) { v, _, err := orig.Safe(args...); return v, err }
		case call == nil: // string: a one-argument Fast function
			call = func(args ...any) (any, error) { return orig.Fast(args[0]), nil }
		}
		opts = append(opts, func(c *conf.Config) {
			c.Functions[name] = &builtin.Function{Name: name, Types: orig.Types, Validate: orig.Validate, Deref: orig.Deref,
				Func: func(args ...any) (any, error) {
					if err := fits(args); err != nil {
						return nil, err
					}
					out, err := call(args...)
					if s, ok := out.(string); ok && len(s) > ConditionMaxStringBytes { // a value renderedSize misjudged
						return nil, errStringTooLong(name)
					}
					return out, err
				}}
		})
	}
	return append(opts, expr.Function(fnAdd, add, new(func(any, any) any)))
}

// add is + with the length of a string result checked first.
func add(args ...any) (any, error) {
	a, aok := args[0].(string)
	b, bok := args[1].(string)
	if aok && bok && len(a)+len(b) > ConditionMaxStringBytes {
		return nil, errStringTooLong("+")
	}
	return runtime.Add(args[0], args[1]), nil
}

// evalPatcher turns every a + b into $add(a, b) and every predicate body
// p (all, any, map, filter, reduce, …) into $step(p), which counts the
// steps of an event's evaluations (ConditionEnv.step). The program is
// compiled twice: once without it, for the type checker to judge the
// condition as written (1 + 2 is not a boolean), then with it, for
// evaluation.
type evalPatcher struct{}

func (evalPatcher) Visit(node *exprast.Node) {
	switch n := (*node).(type) {
	case *exprast.BinaryNode:
		if n.Operator == "+" {
			exprast.Patch(node, &exprast.CallNode{Callee: &exprast.IdentifierNode{Value: fnAdd}, Arguments: []exprast.Node{n.Left, n.Right}})
		}
	case *exprast.PredicateNode:
		n.Node = &exprast.CallNode{Callee: &exprast.IdentifierNode{Value: fnStep}, Arguments: []exprast.Node{n.Node}}
	}
}

func repeatFits(args []any) error {
	s, ok := args[0].(string)
	if !ok || len(args) < 2 {
		return nil // the builtin reports it
	}
	if n := runtime.ToInt(args[1]); n > 0 && len(s) > ConditionMaxStringBytes/n {
		return errStringTooLong("repeat")
	}
	return nil
}

func replaceFits(args []any) error {
	if len(args) < 3 {
		return nil
	}
	s, ok1 := args[0].(string)
	old, ok2 := args[1].(string)
	repl, ok3 := args[2].(string)
	if !ok1 || !ok2 || !ok3 || len(repl) <= len(old) {
		return nil // not a string replacement, or it cannot grow
	}
	n := utf8.RuneCountInString(s) + 1 // replacing "" inserts at every rune
	if old != "" {
		n = strings.Count(s, old)
	}
	if len(args) > 3 {
		if m := runtime.ToInt(args[3]); m >= 0 && m < n {
			n = m
		}
	}
	if n > 0 && (len(repl)-len(old)) > (ConditionMaxStringBytes-len(s))/n {
		return errStringTooLong("replace")
	}
	return nil
}

func joinFits(args []any) error {
	sep := ""
	if len(args) > 1 {
		sep, _ = args[1].(string)
	}
	var items []string
	switch list := args[0].(type) {
	case []string:
		items = list
	case []any:
		items = make([]string, 0, len(list))
		for _, it := range list {
			if s, ok := it.(string); ok {
				items = append(items, s)
			}
		}
	}
	size := len(sep) * max(len(items)-1, 0)
	for _, s := range items {
		if size += len(s); size > ConditionMaxStringBytes {
			return errStringTooLong("join")
		}
	}
	if size > ConditionMaxStringBytes {
		return errStringTooLong("join")
	}
	return nil
}

// sizeFits checks that rendering args[0] (toJSON, string) stays within the
// limit, measured on the value before it is rendered.
func sizeFits(op string, args []any) error {
	if len(args) == 0 {
		return nil
	}
	if renderedSize(args[0], 0, ConditionMaxStringBytes) > ConditionMaxStringBytes {
		return errStringTooLong(op)
	}
	return nil
}

// renderedSize bounds the length of v rendered as indented JSON or with
// %v: escaped strings, numbers, and per element its indentation. It stops
// counting past limit.
func renderedSize(v any, depth, limit int) int {
	const scalar = 32 // a number, a boolean, null, a time or a duration
	switch x := v.(type) {
	case nil, time.Time, time.Duration:
		return scalar
	case string:
		return 2 + escapedLen(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return 2 + escapedLen(rv.String())
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return scalar
		}
		return renderedSize(rv.Elem().Interface(), depth, limit)
	case reflect.Slice, reflect.Array:
		size := 2
		for i := 0; i < rv.Len() && size <= limit; i++ {
			size += 2*depth + 4 + renderedSize(rv.Index(i).Interface(), depth+1, limit-size)
		}
		return size
	case reflect.Map:
		size := 2
		for it := rv.MapRange(); it.Next() && size <= limit; {
			size += 2*depth + 4 + renderedSize(it.Key().Interface(), depth+1, limit-size) +
				renderedSize(it.Value().Interface(), depth+1, limit-size)
		}
		return size
	case reflect.Struct:
		size := 2
		for i := 0; i < rv.NumField() && size <= limit; i++ {
			size += 2*depth + 4 + len(rv.Type().Field(i).Name) + scalar
		}
		return size
	}
	return scalar
}

// escapedLen bounds the length of s as the inside of a JSON string.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == '"' || c == '\\':
			n += 2
		case c >= 0x80:
			n += 3 // an invalid byte becomes \ufffd
		default:
			n++
		}
	}
	return n
}
