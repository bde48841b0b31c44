package observers

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func conditionEvent() *Event {
	return &Event{
		ID:         "6f1c",
		Kind:       KindUpdate,
		EntityType: "Order",
		EntityID:   "42",
		Data: map[string]any{
			"status":   "shipped",
			"total":    100.0,
			"qty":      3.0,
			"paid":     true,
			"note":     nil,
			"count":    2.0,
			"type":     "retail",
			"customer": map[string]any{"tier": "gold", "address": map[string]any{"city": "Lyon"}},
			"tags":     []any{"a", "b"},
		},
		Before: map[string]any{
			"status": "new", "total": 100.0, "qty": 2.0, "paid": true, "note": nil, "count": 2.0, "type": "retail",
			"customer": map[string]any{"tier": "gold", "address": map[string]any{"city": "Lyon"}},
			"tags":     []any{"a", "b"},
		},
	}
}

func TestConditionEval(t *testing.T) {
	t.Parallel()
	ev := conditionEvent()
	for _, tc := range []struct {
		src  string
		want bool
	}{
		// comparisons, numeric-aware
		{"status == 'shipped'", true},
		{`status == "shipped"`, true},
		{"status != 'shipped'", false},
		{"total == 100", true},
		{"total == 100.00", true},
		{"100.00 == 100", true},
		{"total > 99.5", true},
		{"total > 100", false},
		{"total >= 100", true},
		{"total < 100", false},
		{"total <= 100", true},
		{"qty != 3", false},
		{"paid == true", true},
		{"note == nil", true},
		// logic
		{"status == 'shipped' && total >= 100", true},
		{"status == 'new' || total >= 100", true},
		{"!(status == 'new')", true},
		{"status == 'shipped' and not paid", false},
		{"status == 'x' or paid", true},
		{"(status == 'new' || status == 'shipped') && (qty > 2)", true},
		// missing fields are nil
		{"missing == nil", true},
		{"missing == 'x'", false},
		{"!has_field('missing')", true},
		// dotted paths, nil-safe
		{"customer.tier == 'gold'", true},
		{"customer.address.city == 'Lyon'", true},
		{"customer.missing.deeper == nil", true},
		{"nothing.at.all == nil", true},
		{"tags[0] == 'a'", true},
		// fields named like expr builtins
		{"count == 2", true},
		{"type == 'retail'", true},
		// functions
		{"has_field('status')", true},
		{"has_field('note')", true},
		{"has_field('customer.tier')", true},
		{"has_field('customer.nope')", false},
		{"field_changed('status')", true},
		{"field_changed('qty')", true},
		{"field_changed('total')", false},
		{"field_changed('customer')", false},
		{"field_changed_to('status', 'shipped')", true},
		{"field_changed_to('status', 'new')", false},
		{"field_changed_from('status', 'new')", true},
		{"field_changed_from('status', 'shipped')", false},
		{"field_changed_to('qty', 3)", true},
		{"field_changed_to('qty', 3.0)", true},
		{"field_changed_from('qty', 2)", true},
		{"field_changed_to('total', 100)", false},
		// event metadata
		{"event.kind == 'UPDATE'", true},
		{"event.entity_type == 'Order'", true},
		{"event.entity_id == '42'", true},
		{"event.id == '6f1c'", true},
		// expr builtins still work as calls
		{"len(tags) == 2", true},
		{"upper(status) == 'SHIPPED'", true},
		{"'a' in tags", true},
		{"missing", false}, // nil is not true
	} {
		c, err := CompileCondition(tc.src)
		require.NoError(t, err, tc.src)
		require.Equal(t, tc.src, c.Source())
		got, err := c.Eval(ev)
		require.NoError(t, err, tc.src)
		require.Equal(t, tc.want, got, tc.src)
	}
}

func TestConditionRuntimeErrors(t *testing.T) {
	t.Parallel()
	ev := conditionEvent()
	for _, src := range []string{
		"missing > 100",
		"status > 3",
		"status", // a string is not a boolean
		"customer.tier > 1",
	} {
		c, err := CompileCondition(src)
		require.NoError(t, err, src)
		got, err := c.Eval(ev)
		require.Error(t, err, src)
		require.False(t, got, src)
		require.Contains(t, err.Error(), src)
		require.NotContains(t, err.Error(), "\n", "one-line error")
	}
}

func TestConditionCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, want string }{
		{"status = 'new'", "unexpected token"},
		{"status ==", "unexpected token EOF"},
		{"1 + 2", "expected bool, but got int"},
		{"'text'", "expected bool, but got string"},
		{"has_field(1)", "cannot use int as argument"},
		{"field_changed_to('status')", "not enough arguments"},
		{"   ", "condition is empty"},
	} {
		_, err := CompileCondition(tc.src)
		require.Error(t, err, tc.src)
		require.Contains(t, err.Error(), tc.want, tc.src)
	}
}

func TestConditionEventFieldInData(t *testing.T) {
	t.Parallel()
	c, err := CompileCondition("event.name == 'launch' && event.kind == nil")
	require.NoError(t, err)
	ok, err := c.Eval(&Event{Kind: KindInsert, Data: map[string]any{"event": map[string]any{"name": "launch"}}})
	require.NoError(t, err)
	require.True(t, ok, "a data field named event wins over the event object")
}

func TestConditionInsertAndDeleteChanges(t *testing.T) {
	t.Parallel()
	ins := &Event{Kind: KindInsert, Data: map[string]any{"status": "new"}}
	del := &Event{Kind: KindDelete, Before: map[string]any{"status": "gone"}}
	c, err := CompileCondition("field_changed_to('status', 'new')")
	require.NoError(t, err)
	ok, err := c.Eval(ins)
	require.NoError(t, err)
	require.True(t, ok)
	c, err = CompileCondition("field_changed_from('status', 'gone') && field_changed_to('status', nil)")
	require.NoError(t, err)
	ok, err = c.Eval(del)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestConditionEnvSharedAcrossConditions(t *testing.T) {
	t.Parallel()
	env := NewConditionEnv(conditionEvent())
	for _, src := range []string{"status == 'shipped'", "field_changed('status')", "total == 100"} {
		c, err := CompileCondition(src)
		require.NoError(t, err)
		ok, err := c.EvalEnv(env)
		require.NoError(t, err)
		require.True(t, ok, src)
	}
}
