package observers

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTemplateRender(t *testing.T) {
	t.Parallel()
	data := map[string]any{
		"id":         "o-1",
		"status":     "new",
		"total":      100.0,
		"price":      12.5,
		"big":        1e6,
		"paid":       true,
		"nothing":    nil,
		"note":       "say \"hi\"\n<b>",
		"customer":   map[string]any{"name": "Ann", "tier": map[string]any{"level": 2.0}},
		"tags":       []any{"a", "b"},
		"dotted.key": "literal",
		"event":      map[string]any{"kind": "INSERT"},
	}
	for _, tc := range []struct {
		src        string
		jsonEscape bool
		want       string
	}{
		{"plain text", false, "plain text"},
		{"{{id}}", false, "o-1"},
		{"{{ id }}", false, "o-1"},
		{"{{   id\t}}", false, "o-1"},
		{"a {{ status }} b {{ id }} c", false, "a new b o-1 c"},
		{"{{ total }}", false, "100"},
		{"{{ price }}", false, "12.5"},
		{"{{ big }}", false, "1000000"},
		{"{{ paid }}", false, "true"},
		{"[{{ nothing }}]", false, "[]"},
		{"[{{ missing }}]", false, "[]"},
		{"[{{ customer.missing.deep }}]", false, "[]"},
		{"{{ customer.name }}", false, "Ann"},
		{"{{ customer.tier.level }}", false, "2"},
		{"{{ customer.tier }}", false, `{"level":2}`},
		{"{{ tags }}", false, `["a","b"]`},
		{"{{ dotted.key }}", false, "literal"},
		{"{{ event.kind }}", false, "INSERT"},
		{"{{ note }}", false, "say \"hi\"\n<b>"},
		{`{"note": "{{ note }}"}`, true, `{"note": "say \"hi\"\n<b>"}`},
		{`{"c": "{{ customer.tier }}"}`, true, `{"c": "{\"level\":2}"}`},
		{`{"t": {{ total }}, "p": {{ paid }}}`, true, `{"t": 100, "p": true}`},
		{"}} stray {{ id }} }}", false, "}} stray o-1 }}"},
	} {
		tpl, err := CompileTemplate(tc.src)
		require.NoError(t, err, tc.src)
		require.Equal(t, tc.want, mustRender(t, tpl, data, tc.jsonEscape), tc.src)
		require.Equal(t, tc.src, tpl.Source())
	}
}

func TestTemplateRenderKeepsJSONValid(t *testing.T) {
	t.Parallel()
	tpl, err := CompileTemplate(`{"id": "{{ id }}", "note": "{{ note }}", "obj": "{{ obj }}"}`)
	require.NoError(t, err)
	out := mustRender(t, tpl, map[string]any{"id": 1.0, "note": "a\"b\\c\u0001", "obj": map[string]any{"k": "v\""}}, true)
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Equal(t, map[string]string{"id": "1", "note": "a\"b\\c\u0001", "obj": `{"k":"v\""}`}, got)
}

func TestTemplateCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, want string }{
		{"{{ id", `unclosed "{{" at offset 0`},
		{"ok {{ id }} then {{ x", `unclosed "{{" at offset 17`},
		{"{{}}", "empty placeholder"},
		{"{{   }}", "empty placeholder"},
		{"{{ a b }}", "invalid placeholder"},
		{"{{ a..b }}", "invalid placeholder"},
		{"{{ .a }}", "invalid placeholder"},
	} {
		_, err := CompileTemplate(tc.src)
		require.Error(t, err, tc.src)
		require.Contains(t, err.Error(), tc.want, tc.src)
	}
}

func TestTemplateFields(t *testing.T) {
	t.Parallel()
	tpl, err := CompileTemplate("{{ a }}-{{b.c}}")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b.c"}, tpl.Fields())
}

func TestTemplateData(t *testing.T) {
	t.Parallel()
	ev := &Event{ID: "e1", Kind: KindDelete, EntityType: "User", EntityID: "7", Data: map[string]any{"name": "Bo"}}
	data := TemplateData(ev)
	require.Equal(t, "Bo", data["name"])
	require.Equal(t, map[string]any{"id": "e1", "kind": "DELETE", "entity_type": "User", "entity_id": "7", "tenant_id": "", "user_id": ""}, data["event"])
	require.NotContains(t, ev.Data, "event", "the event's data is not modified")

	tpl, err := CompileTemplate("{{ event.entity_type }}/{{ event.entity_id }}/{{ event.kind }}/{{ event.id }}")
	require.NoError(t, err)
	require.Equal(t, "User/7/DELETE/e1", mustRender(t, tpl, data, false))

	own := &Event{Kind: KindInsert, Data: map[string]any{"event": "launch"}}
	require.Equal(t, "launch", TemplateData(own)["event"], "the data's own event field wins")

	require.NotNil(t, TemplateData(&Event{Kind: KindInsert})["event"], "nil data still gets the event object")
}

// mustRender renders t, failing the test on an error.
func mustRender(t *testing.T, tpl *Template, data map[string]any, jsonEscape bool) string {
	t.Helper()
	s, err := tpl.Render(data, jsonEscape)
	require.NoError(t, err)
	return s
}
