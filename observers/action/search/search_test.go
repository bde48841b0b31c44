package search

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/stretchr/testify/require"
)

func TestActionDocument(t *testing.T) {
	t.Parallel()
	src := "observers:\n  o:\n    entity: '*'\n    events: [INSERT]\n    actions:\n      - type: search\n      - type: search\n        index: catalog-v2\n"
	cfg, _, err := observers.Parse("x.yaml", []byte(src))
	require.NoError(t, err)
	def, named := cfg.Observers[0].Actions[0].(*Action), cfg.Observers[0].Actions[1].(*Action)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ev := &observers.Event{ID: "e-1", Kind: observers.KindUpdate, EntityType: "OrderLine", EntityID: "42", CreatedAt: at,
		RawData: []byte(`{"qty": 12345678901234567890, "note": "é \"q\""}`)}
	require.Equal(t, "orderline", def.IndexName(ev))
	require.Equal(t, "catalog-v2", named.IndexName(ev))

	doc, err := def.Document(ev)
	require.NoError(t, err)
	require.JSONEq(t, `{"entity_type": "OrderLine", "entity_id": "42", "kind": "UPDATE", "event_id": "e-1",
		"timestamp": "2026-01-02T03:04:05.000000006Z", "data": {"qty": 12345678901234567890, "note": "é \"q\""}}`, string(doc))
	require.Contains(t, string(doc), "12345678901234567890", "big integers stay exact")

	// Without raw data the decoded map is used; no data is {}.
	doc, err = def.Document(&observers.Event{EntityType: "A", EntityID: "1", Data: map[string]any{"a": 1.5}})
	require.NoError(t, err)
	var got Document
	require.NoError(t, json.Unmarshal(doc, &got))
	require.JSONEq(t, `{"a": 1.5}`, string(got.Data))
	doc, err = def.Document(&observers.Event{EntityType: "A", EntityID: "1"})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(doc, &got))
	require.JSONEq(t, `{}`, string(got.Data))

	_, err = def.Document(&observers.Event{EntityType: "A"})
	require.ErrorContains(t, err, "no entity id")
}

func TestActionConfigErrors(t *testing.T) {
	t.Parallel()
	obs := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n"
	for _, tc := range []struct{ name, src, want string }{
		{"bad index", obs + "      - type: search\n        index: 'my index'\n",
			`x.yaml:7:16: observers.o.actions[0].index "my index" is not an index name`},
		{"unknown key", obs + "      - type: search\n        indx: a\n",
			`x.yaml:7:9: unknown key "indx" in observers.o.actions[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags, err := observers.Parse("x.yaml", []byte(tc.src))
			require.Error(t, err)
			require.NotEmpty(t, diags.Errors())
			require.Equal(t, tc.want, strings.SplitN(diags.Errors()[0].String(), "\n", 2)[0])
		})
	}
}
