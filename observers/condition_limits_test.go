package observers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// A deeply nested condition is refused before expr parses it (its parser
// recurses per level: a million levels is a fatal stack overflow).
func TestConditionNestingLimit(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ src, want string }{
		"million parens": {strings.Repeat("(", 1_000_000) + "true" + strings.Repeat(")", 1_000_000), "condition is longer than 16 KiB"},
		"million bangs":  {strings.Repeat("!", 1_000_000) + "true", "condition is longer than 16 KiB"},
		"parens":         {strings.Repeat("(", 8000) + "true" + strings.Repeat(")", 8000), "nests deeper than 64 levels (column 65)"},
		"bangs":          {strings.Repeat("!", 16000) + "true", "nests deeper than 64 levels (column 65)"},
		"not":            {strings.Repeat("not ", 4000) + "true", "nests deeper than 64 levels (column 257)"},
		"calls":          {strings.Repeat("has_field(", 70) + "'a'" + strings.Repeat(")", 70), "nests deeper than 64 levels"},
		"brackets":       {"status in " + strings.Repeat("[", 70) + strings.Repeat("]", 70), "nests deeper than 64 levels (column 75)"},
		"minus":          {strings.Repeat("-", 70) + "1 > 0", "nests deeper than 64 levels"},
		"ternary":        {strings.Repeat("paid ? true : ", 70) + "false", "nests deeper than 64 levels"},
		"power":          {strings.Repeat("2 ** ", 70) + "2 > 1", "nests deeper than 64 levels"},
		"let":            {strings.Repeat("let a = 1; ", 70) + "a > 0", "nests deeper than 64 levels"},
		"second line":    {"paid &&\n" + strings.Repeat("(", 70) + "true" + strings.Repeat(")", 70), "nests deeper than 64 levels (line 2, column 65)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := observers.CompileCondition(tc.src)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Less(t, len(err.Error()), 400, "the source is not echoed whole")
		})
	}
	// 64 levels are fine, and so are long flat conditions.
	for _, src := range []string{
		strings.Repeat("(", 63) + "status == 'new'" + strings.Repeat(")", 63),
		strings.Repeat("!", 64) + "paid",
		"-(-(-1)) < 0 && !(!paid) && -total < 0",
		strings.Repeat("total > 1 && ", 500) + "paid",
		"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j == nil",
	} {
		_, err := observers.CompileCondition(src)
		require.NoError(t, err, "%.80s", src)
	}
}

func TestConditionLengthLimit(t *testing.T) {
	t.Parallel()
	// expr quotes what it cannot read; the message is cut (found by FuzzCondition).
	_, err := observers.CompileCondition(strings.Repeat("1", 10_000) + " > 0")
	require.ErrorContains(t, err, "invalid integer literal")
	require.Less(t, len(err.Error()), 600)

	src := "status == '" + strings.Repeat("x", observers.ConditionMaxBytes) + "'"
	_, err = observers.CompileCondition(src)
	require.Error(t, err)
	require.Contains(t, err.Error(), "condition is longer than 16 KiB (16384 bytes)")
	require.Less(t, len(err.Error()), 400)
}

// The same checks run, positioned, on the file and on tb_observer rows.
func TestConditionLimitsPositioned(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("(", 1000) + "true" + strings.Repeat(")", 1000)
	got := errorDiags(t, "c.yaml", "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    condition: \""+deep+"\"\n    actions: [{type: log}]\n")
	require.Len(t, got, 1)
	require.True(t, strings.HasPrefix(got[0], "c.yaml:5:16: invalid condition: the condition nests deeper than 64 levels (column 65)"), got[0])

	rows := []observers.TableObserver{{Name: "deep", ConditionExpression: &deep, Actions: []byte(`[{"type": "log"}]`)}}
	_, diags, err := observers.ParseWithTable("obs.yaml", []byte(tableFile), rows, envOf(nil))
	require.Error(t, err)
	require.Len(t, diags.Errors(), 1)
	require.True(t, strings.HasPrefix(diags.Errors()[0].String(),
		"tb_observer[deep]: invalid condition: the condition nests deeper than 64 levels (column 65)"), diags.Errors()[0].String())
}

// Evaluating a condition cannot build an unbounded string: concatenation
// and the string builtins stop at ConditionMaxStringBytes.
func TestConditionStringGrowth(t *testing.T) {
	t.Parallel()
	ev := &observers.Event{Kind: observers.KindInsert, EntityType: "Order", EntityID: "1",
		Data: map[string]any{"name": strings.Repeat("n", 40_000), "tags": []any{"a", "b"}}}
	for _, src := range []string{
		"len(reduce(1..40, #acc + #acc, 'x')) > 0",
		"len(name + name) > 0",
		"repeat('xxxxxxxxxxxxxxxx', 999999) == ''",
		"replace(name, '', name) == ''",
		"join(map(1..1000, name), ',') == ''",
		"toJSON(map(1..1000, name)) == ''",
		"string(map(1..1000, name)) == ''",
		"let a = name; let b = a + a; b + b == ''",
	} {
		c, err := observers.CompileCondition(src)
		require.NoError(t, err, src)
		ok, err := c.Eval(ev)
		require.False(t, ok, src)
		require.ErrorContains(t, err, "longer than 64 KiB (65536 bytes)", src)
	}
	// Within the limit they work as expr's own.
	for src, want := range map[string]bool{
		"'a' + 'b' == 'ab'":                  true,
		"1 + 2 == 3":                         true,
		"len(name + 'x') == 40001":           true,
		"repeat('ab', 2) == 'abab'":          true,
		"replace('a-b', '-', '+') == 'a+b'":  true,
		"join(tags, ',') == 'a,b'":           true,
		"join(tags) == 'ab'":                 true,
		"toJSON(tags) == toJSON(['a', 'b'])": true,
		"string(42) == '42'":                 true,
		"string(tags) == '[a b]'":            true,
		"string(1.5) == '1.5'":               true,
	} {
		c, err := observers.CompileCondition(src)
		require.NoError(t, err, src)
		got, err := c.Eval(ev)
		require.NoError(t, err, src)
		require.Equal(t, want, got, src)
	}
}

// Predicates nested over the event's own lists take the product of their
// lengths: the steps of one event's evaluations stop at ConditionMaxSteps.
func TestConditionStepLimit(t *testing.T) {
	t.Parallel()
	items := make([]any, 2000)
	for i := range items {
		items[i] = float64(i)
	}
	ev := &observers.Event{Kind: observers.KindInsert, EntityType: "Order", EntityID: "1", Data: map[string]any{"items": items}}
	c, err := observers.CompileCondition("all(items, all(items, # >= 0))")
	require.NoError(t, err)
	ok, err := c.Eval(ev)
	require.False(t, ok)
	require.ErrorContains(t, err, "more than 1048576 predicate steps for this event")

	// The budget is the event's, across the conditions evaluated in its
	// environment; below it, predicates work as expr's own.
	env := observers.NewConditionEnv(ev)
	for src, want := range map[string]bool{
		"all(items, # >= 0)":                        true,
		"any(items, # == 1999)":                     true,
		"count(items, # > 1997) == 2":               true,
		"sum(map(items, # * 2)) == 3998000":         true,
		"len(filter(items, # < 10)) == 10":          true,
		"reduce(items, #acc + #, 0) == 1999000":     true,
		"find(items, # > 5) == 6":                   true,
		"len(groupBy(items, int(#) % 2)) == 2":      true,
		"first(sortBy(items, -#)) == 1999":          true,
		"none(items, # < 0) && one(items, # == 42)": true,
		"all(items, # > 0)":                         false,
	} {
		c, err := observers.CompileCondition(src)
		require.NoError(t, err, src)
		got, err := c.EvalEnv(env)
		require.NoError(t, err, src)
		require.Equal(t, want, got, src)
	}
}
