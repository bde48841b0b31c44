package elasticsearch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

// put sends a JSON body to srv as an operator would, and returns the status.
func put(t *testing.T, srv *estest.Server, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	return res.StatusCode
}

func TestEnsureTemplatesInstallsWhenAbsent(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.EnsureTemplates(ctx))

	raw, ok := srv.Template("fraiseql_events")
	require.True(t, ok)
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Settings map[string]any `json:"settings"`
			Mappings struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	require.NoError(t, json.Unmarshal(raw, &tmpl))
	require.Equal(t, []string{"fraiseql_events-*"}, tmpl.IndexPatterns)
	require.EqualValues(t, 1, tmpl.Template.Settings["number_of_shards"])
	require.EqualValues(t, 0, tmpl.Template.Settings["number_of_replicas"])
	require.Equal(t, "fraiseql_events_policy", tmpl.Template.Settings["index.lifecycle.name"])
	props := tmpl.Template.Mappings.Properties
	for _, f := range []string{"id", "event_id", "entity_type", "entity_id", "event_kind", "observer_id", "action_type", "status"} {
		require.Equal(t, "keyword", props[f]["type"], f)
	}
	for f, typ := range map[string]string{"timestamp": "date", "event_seq": "long", "action_index": "integer", "attempt": "integer", "duration_ms": "long"} {
		require.Equal(t, typ, props[f]["type"], f)
	}
	for _, f := range []string{"error", "search_text"} {
		require.Equal(t, map[string]any{"type": "text", "analyzer": "fraiseql_words"}, props[f], f)
	}
	require.Equal(t, map[string]any{"type": "object", "enabled": false}, props["data"])
	analysis, err := json.Marshal(tmpl.Template.Settings["analysis"])
	require.NoError(t, err)
	require.JSONEq(t, `{"analyzer": {"fraiseql_words": {"type": "custom", "tokenizer": "fraiseql_words", "filter": ["lowercase"]}},
		"tokenizer": {"fraiseql_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}}}`, string(analysis))

	policy, ok := srv.Policy("fraiseql_events_policy")
	require.True(t, ok)
	require.JSONEq(t, `{"_meta": {"managed_by": "fraiseql-observers"}, "phases": {
		"hot": {"min_age": "0d", "actions": {}},
		"delete": {"min_age": "30d", "actions": {"delete": {}}}}}`, string(policy))

	// Again: nothing is written.
	before := len(srv.Requests())
	require.NoError(t, c.EnsureTemplates(ctx))
	for _, r := range srv.Requests()[before:] {
		require.True(t, strings.HasPrefix(r, "GET "), "a second run only reads: %s", r)
	}
}

func TestEnsureTemplatesLeavesAnOperatorsAlone(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	edited := `{"index_patterns": ["fraiseql_events-*"], "priority": 100,
		"template": {"settings": {"number_of_replicas": 2, "index.lifecycle.name": "fraiseql_events_policy"}}}`
	policy := `{"policy": {"phases": {"hot": {"actions": {}}, "delete": {"min_age": "90d", "actions": {"delete": {}}}}}}`
	require.Equal(t, http.StatusOK, put(t, srv, "/_index_template/fraiseql_events", edited))
	require.Equal(t, http.StatusOK, put(t, srv, "/_ilm/policy/fraiseql_events_policy", policy))

	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	require.NoError(t, c.EnsureTemplates(context.Background()))
	got, _ := srv.Template("fraiseql_events")
	require.JSONEq(t, edited, string(got))
	gotPolicy, _ := srv.Policy("fraiseql_events_policy")
	require.Contains(t, string(gotPolicy), "90d")
}

func TestEnsureTemplatesReportsAFailure(t *testing.T) {
	t.Parallel()
	// Another template of the same priority claims the pattern: the
	// server refuses ours, and EnsureTemplates says so.
	srv := estest.New(t)
	require.Equal(t, http.StatusOK, put(t, srv, "/_index_template/everything", `{"index_patterns": ["*"], "priority": 100}`))
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	err = c.EnsureTemplates(context.Background())
	require.ErrorContains(t, err, "install index template fraiseql_events")
	require.ErrorContains(t, err, "same priority")
}

// The guide's policy rolls over at "max_primary_store_size", which
// Elasticsearch does not know; estest refuses it as Elasticsearch does
// (the condition list is the client's typedapi RolloverAction), which is
// why auditPolicy leaves the rollover out.
func TestTheGuidesRolloverConditionIsRefused(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	guide := `{"policy": {"phases": {"hot": {"min_age": "0d", "actions": {"rollover": {"max_primary_store_size": "50gb"}}},
		"delete": {"min_age": "30d", "actions": {"delete": {}}}}}}`
	require.Equal(t, http.StatusBadRequest, put(t, srv, "/_ilm/policy/guide", guide))
	known := strings.Replace(guide, "max_primary_store_size", "max_primary_shard_size", 1)
	require.Equal(t, http.StatusOK, put(t, srv, "/_ilm/policy/guide", known))
	require.Equal(t, http.StatusBadRequest, put(t, srv, "/_ilm/policy/bad", string(bytes.Replace([]byte(known), []byte(`"30d"`), []byte(`"thirty"`), 1))))
}
