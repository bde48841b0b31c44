package observers

import (
	"testing"

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

func matchNames(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Observer.Name+"/"+m.Action().Webhook.URL[len("https://a.example/"):])
	}
	return out
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cfg, diags, err := Parse("m.yaml", []byte(matchConfig))
	require.NoError(t, err, "%v", diags)

	for _, tc := range []struct {
		name string
		ev   *Event
		want []string
	}{
		{"insert matching condition", &Event{Kind: KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 150.0}},
			[]string{"audit/4", "order_created/1", "order_created/2"}},
		{"insert failing condition", &Event{Kind: KindInsert, EntityType: "Order", Data: map[string]any{"status": "new", "total": 50.0}},
			[]string{"audit/4"}},
		{"update to shipped", &Event{Kind: KindUpdate, EntityType: "Order",
			Data: map[string]any{"status": "shipped"}, Before: map[string]any{"status": "new"}},
			[]string{"audit/4", "order_shipped/3"}},
		{"update not shipped", &Event{Kind: KindUpdate, EntityType: "Order",
			Data: map[string]any{"status": "paid"}, Before: map[string]any{"status": "new"}},
			[]string{"audit/4"}},
		{"delete only wildcard", &Event{Kind: KindDelete, EntityType: "Order", Before: map[string]any{"status": "new"}},
			[]string{"audit/4"}},
		{"entity is case-sensitive", &Event{Kind: KindInsert, EntityType: "order", Data: map[string]any{"status": "new", "total": 150.0}},
			[]string{"audit/4"}},
		{"custom kind filtered by events", &Event{Kind: KindCustom, EntityType: "User"},
			[]string{"user_events/5"}},
		{"other entity", &Event{Kind: KindInsert, EntityType: "Invoice"},
			[]string{"audit/4"}},
		{"unknown kind matches nothing", &Event{Kind: "", RawKind: "TRUNCATE", EntityType: "Order"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := cfg.Match(tc.ev, func(o *Observer, err error) { t.Errorf("unexpected condition error in %s: %v", o.Name, err) })
			require.Equal(t, tc.want, matchNames(got))
		})
	}
}

func TestMatchConditionErrorDoesNotMatch(t *testing.T) {
	t.Parallel()
	cfg, _, err := Parse("m.yaml", []byte(matchConfig))
	require.NoError(t, err)
	var failed []string
	got := cfg.Match(&Event{Kind: KindInsert, EntityType: "Order", Data: map[string]any{"status": "new"}},
		func(o *Observer, err error) {
			require.Error(t, err)
			failed = append(failed, o.Name)
		})
	require.Equal(t, []string{"audit/4"}, matchNames(got), "total is missing: runtime error, no match")
	require.Equal(t, []string{"order_created"}, failed)

	require.NotPanics(t, func() {
		cfg.Match(&Event{Kind: KindInsert, EntityType: "Order", Data: map[string]any{}}, nil)
	})
	require.Nil(t, cfg.Match(nil, nil))
}
