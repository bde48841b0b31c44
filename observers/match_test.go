package observers_test

import (
	"testing"

	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"

	"github.com/stretchr/testify/require"
)

const matchConfig = `observers:
  order_created:
    entity: Order
    events: [INSERT]
    condition: "status == 'new' && total > 100"
    actions:
      - {type: webhook, url: "https://a.example/1"}
      - {type: webhook, url: "https://a.example/2"}
  order_shipped:
    entity: Order
    events: [UPDATE]
    condition: "field_changed_to('status', 'shipped')"
    actions:
      - {type: webhook, url: "https://a.example/3"}
  audit:
    entity: "*"
    events: [INSERT, UPDATE, DELETE]
    actions:
      - {type: webhook, url: "https://a.example/4"}
  user_events:
    entity: User
    events: [INSERT, CUSTOM]
    actions:
      - {type: webhook, url: "https://a.example/5"}
`

func matchNames(ms []observers.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Observer.Name+"/"+m.Action().(*webhook.Action).URL[len("https://a.example/"):])
	}
	return out
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cfg, diags, err := observers.Parse("m.yaml", []byte(matchConfig))
	require.NoError(t, err, "%v", diags)

	for _, tc := range []struct {
		name string
		ev   *observers.Event
		want []string
	}{
		{"insert matching condition", &observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 150.0}},
			[]string{"audit/4", "order_created/1", "order_created/2"}},
		{"insert failing condition", &observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 50.0}},
			[]string{"audit/4"}},
		{"update to shipped", &observers.Event{Kind: observers.KindUpdate, EntityType: "Order",
			Data: map[string]any{"status": "shipped"}, Before: map[string]any{"status": "new"}},
			[]string{"audit/4", "order_shipped/3"}},
		{"update not shipped", &observers.Event{Kind: observers.KindUpdate, EntityType: "Order",
			Data: map[string]any{"status": "paid"}, Before: map[string]any{"status": "new"}},
			[]string{"audit/4"}},
		{"delete only wildcard", &observers.Event{Kind: observers.KindDelete, EntityType: "Order", Before: map[string]any{"status": "new"}},
			[]string{"audit/4"}},
		{"entity is case-sensitive", &observers.Event{Kind: observers.KindInsert, EntityType: "order", Data: map[string]any{"status": "new", "total": 150.0}},
			[]string{"audit/4"}},
		{"custom kind filtered by events", &observers.Event{Kind: observers.KindCustom, EntityType: "User"},
			[]string{"user_events/5"}},
		{"other entity", &observers.Event{Kind: observers.KindInsert, EntityType: "Invoice"},
			[]string{"audit/4"}},
		{"unknown kind matches nothing", &observers.Event{Kind: "", RawKind: "TRUNCATE", EntityType: "Order"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := cfg.Match(tc.ev, func(o *observers.Observer, err error) { t.Errorf("unexpected condition error in %s: %v", o.Name, err) })
			require.Equal(t, tc.want, matchNames(got))
		})
	}
}

func TestMatchConditionErrorDoesNotMatch(t *testing.T) {
	t.Parallel()
	cfg, _, err := observers.Parse("m.yaml", []byte(matchConfig))
	require.NoError(t, err)
	var failed []string
	got := cfg.Match(&observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new"}},
		func(o *observers.Observer, err error) {
			require.Error(t, err)
			failed = append(failed, o.Name)
		})
	require.Equal(t, []string{"audit/4"}, matchNames(got), "total is missing: runtime error, no match")
	require.Equal(t, []string{"order_created"}, failed)

	require.NotPanics(t, func() {
		cfg.Match(&observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{}}, nil)
	})
	require.Nil(t, cfg.Match(nil, nil))
}

// Explain gives every observer a verdict, and its matches are Match's.
func TestExplain(t *testing.T) {
	t.Parallel()
	cfg, _, err := observers.Parse("m.yaml", []byte(matchConfig))
	require.NoError(t, err)
	verdicts := func(ev *observers.Event) map[string]observers.Miss {
		out := map[string]observers.Miss{}
		for _, x := range cfg.Explain(ev) {
			out[x.Observer.Name] = x.Miss
			require.Equal(t, x.Miss == observers.MissConditionError, x.Err != nil, x.Observer.Name)
			require.Equal(t, x.Miss == "", x.Matched())
		}
		return out
	}
	matchedBy := func(ev *observers.Event) []string {
		var out []string
		for _, x := range cfg.Explain(ev) {
			if x.Matched() {
				for range x.Observer.Actions {
					out = append(out, x.Observer.Name)
				}
			}
		}
		return out
	}

	ins := &observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 50.0}}
	require.Equal(t, map[string]observers.Miss{
		"audit": "", "order_created": observers.MissConditionFalse,
		"order_shipped": observers.MissKind, "user_events": observers.MissEntity,
	}, verdicts(ins))

	noTotal := &observers.Event{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new"}}
	xs := cfg.Explain(noTotal)
	require.Equal(t, "order_created", xs[1].Observer.Name)
	require.Equal(t, observers.MissConditionError, xs[1].Miss)
	require.ErrorContains(t, xs[1].Err, "total > 100")

	unknown := &observers.Event{RawKind: "TRUNCATE", EntityType: "Order"}
	for name, why := range verdicts(unknown) {
		require.Equal(t, observers.MissUnknownKind, why, name)
	}

	// The same decisions as Match, for every event of TestMatch and these.
	for _, ev := range []*observers.Event{ins, noTotal, unknown,
		{Kind: observers.KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 150.0}},
		{Kind: observers.KindUpdate, EntityType: "Order", Data: map[string]any{"status": "shipped"}, Before: map[string]any{"status": "new"}},
		{Kind: observers.KindCustom, EntityType: "User"},
	} {
		var want []string
		for _, m := range cfg.Match(ev, nil) {
			want = append(want, m.Observer.Name)
		}
		require.Equal(t, want, matchedBy(ev))
	}
}
