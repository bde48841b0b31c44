package estest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

// call sends a request and returns the status and the decoded answer.
func call(t *testing.T, srv *estest.Server, method, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, "Elasticsearch", res.Header.Get("X-Elastic-Product"), "every answer carries the product header")
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return res.StatusCode, out
}

func errType(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	if e == nil {
		return ""
	}
	return e["type"].(string)
}

const js = "application/json"

func TestBulkFraming(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	good := `{"create":{"_index":"logs","_id":"1"}}` + "\n" + `{"msg":"a"}` + "\n"
	for _, tc := range []struct {
		name, ct, body string
		status         int
	}{
		{"no trailing newline", "application/x-ndjson", strings.TrimSuffix(good, "\n"), 400},
		{"action not JSON", "application/x-ndjson", "{create}\n{}\n", 400},
		{"two actions on a line", "application/x-ndjson", `{"create":{"_index":"a","_id":"1"},"index":{}}` + "\n{}\n", 400},
		{"unknown action", "application/x-ndjson", `{"upsert":{"_index":"a","_id":"1"}}` + "\n{}\n", 400},
		{"unknown metadata", "application/x-ndjson", `{"create":{"_index":"a","_id":"1","colour":"red"}}` + "\n{}\n", 400},
		{"no index", "application/x-ndjson", `{"create":{"_id":"1"}}` + "\n{}\n", 400},
		{"no source", "application/x-ndjson", `{"create":{"_index":"a","_id":"1"}}` + "\n", 400},
		{"empty", "application/x-ndjson", "\n", 400},
		{"no content type", "", good, 406},
		{"text/plain", "text/plain", good, 406},
		{"ndjson", "application/x-ndjson", good, 200},
		{"json", js, strings.Replace(good, `"1"`, `"2"`, 1), 200},
	} {
		status, _ := call(t, srv, http.MethodPost, "/_bulk", tc.ct, tc.body)
		require.Equal(t, tc.status, status, tc.name)
	}
}

func TestBulkItems(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	body := `{"create":{"_index":"logs","_id":"1"}}` + "\n" + `{"n":1}` + "\n" +
		`{"create":{"_index":"logs","_id":"1"}}` + "\n" + `{"n":2}` + "\n" +
		`{"index":{"_index":"logs","_id":"2"}}` + "\n" + `{"n": ` + "\n" +
		`{"index":{"_index":"logs","_id":"3"}}` + "\n" + `{"n":"three"}` + "\n" +
		`{"index":{"_index":"Logs","_id":"4"}}` + "\n" + `{"n":4}` + "\n" +
		`{"delete":{"_index":"logs","_id":"9"}}` + "\n"
	status, out := call(t, srv, http.MethodPost, "/_bulk", "application/x-ndjson", body)
	require.Equal(t, 200, status)
	require.Equal(t, true, out["errors"])
	var got []string
	for _, it := range out["items"].([]any) {
		for action, res := range it.(map[string]any) {
			r := res.(map[string]any)
			got = append(got, action+" "+strings.TrimSuffix(strings.TrimSuffix(jsonString(r["status"]), ".0"), "")+" "+errType(map[string]any{"error": r["error"]}))
		}
	}
	require.Equal(t, []string{
		"create 201 ", "create 409 version_conflict_engine_exception", "index 400 document_parsing_exception",
		"index 400 document_parsing_exception", // "three" for the long the first document mapped
		"index 400 invalid_index_name_exception", "delete 404 ",
	}, got)

	srv.FailItems(func(_, id string) int { return map[string]int{"5": 429}[id] })
	status, out = call(t, srv, http.MethodPost, "/_bulk", js, `{"index":{"_index":"logs","_id":"5"}}`+"\n{}\n"+`{"index":{"_index":"logs","_id":"6"}}`+"\n{}\n")
	require.Equal(t, 200, status)
	items := out["items"].([]any)
	require.Equal(t, "es_rejected_execution_exception", errType(items[0].(map[string]any)["index"].(map[string]any)))
	require.Equal(t, "", errType(items[1].(map[string]any)["index"].(map[string]any)))
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDocVersions(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	put := func(path, body string) (int, map[string]any) { return call(t, srv, http.MethodPut, path, js, body) }
	status, _ := put("/orders/_doc/1?version=5&version_type=external", `{"v":5}`)
	require.Equal(t, 201, status)
	status, out := put("/orders/_doc/1?version=5&version_type=external", `{"v":50}`)
	require.Equal(t, 409, status)
	require.Equal(t, "version_conflict_engine_exception", errType(out))
	status, _ = put("/orders/_doc/1?version=4&version_type=external", `{"v":4}`)
	require.Equal(t, 409, status)
	status, _ = put("/orders/_doc/1?version=5&version_type=external_gte", `{"v":51}`)
	require.Equal(t, 200, status)
	status, out = put("/orders/_doc/1?version=9", `{"v":9}`)
	require.Equal(t, 400, status, "internal versions are not for concurrency control")
	require.Equal(t, "action_request_validation_exception", errType(out))
	status, _ = put("/orders/_doc/1?routing=x", `{}`)
	require.Equal(t, 400, status, "a parameter estest does not implement")

	status, out = call(t, srv, http.MethodGet, "/orders/_doc/1", "", "")
	require.Equal(t, 200, status)
	require.EqualValues(t, 5, out["_version"])
	require.Equal(t, map[string]any{"v": 51.0}, out["_source"])

	// A delete leaves a tombstone: an older version cannot come back…
	status, _ = call(t, srv, http.MethodDelete, "/orders/_doc/1?version=7&version_type=external", "", "")
	require.Equal(t, 200, status)
	status, _ = call(t, srv, http.MethodGet, "/orders/_doc/1", "", "")
	require.Equal(t, 404, status)
	status, _ = put("/orders/_doc/1?version=6&version_type=external", `{"v":6}`)
	require.Equal(t, 409, status)
	// …for index.gc_deletes only.
	status, _ = put("/short", `{"settings": {"index.gc_deletes": "1ms"}}`)
	require.Equal(t, 200, status)
	status, _ = call(t, srv, http.MethodDelete, "/short/_doc/1?version=7&version_type=external", "", "")
	require.Equal(t, 404, status, "deleting an absent document")
	require.Eventually(t, func() bool {
		status, _ := put("/short/_doc/1?version=6&version_type=external", `{"v":6}`)
		return status == 201
	}, 5*time.Second, 10*time.Millisecond, "the tombstone expires")

	status, out = call(t, srv, http.MethodGet, "/absent/_doc/1", "", "")
	require.Equal(t, 404, status)
	require.Equal(t, "index_not_found_exception", errType(out))
}

func TestSearchDSL(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	status, _ := call(t, srv, http.MethodPut, "/docs", js, `{"settings": {"analysis": {
		"analyzer": {"w": {"type": "custom", "tokenizer": "w", "filter": ["lowercase"]}},
		"tokenizer": {"w": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}}}},
		"mappings": {"properties": {"k": {"type": "keyword"}, "t": {"type": "text", "analyzer": "w"}, "n": {"type": "long"}, "d": {"type": "date"}}}}`)
	require.Equal(t, 200, status)
	for i, d := range []string{
		`{"k": "b", "t": "Timed-Out after 5s", "n": 2, "d": "2026-01-01T00:00:00.001Z"}`,
		`{"k": "a", "t": "timed out", "n": 1, "d": "2026-01-01T00:00:00.002Z"}`,
		`{"k": "c", "t": "fine", "n": 3, "d": "2026-01-02T00:00:00Z"}`,
	} {
		status, _ := call(t, srv, http.MethodPut, "/docs/_doc/"+string(rune('1'+i)), js, d)
		require.Equal(t, 201, status)
	}
	search := func(body string) (int, []string, map[string]any) {
		status, out := call(t, srv, http.MethodPost, "/do*/_search", js, body)
		var ids []string
		if hits, ok := out["hits"].(map[string]any); ok {
			for _, h := range hits["hits"].([]any) {
				ids = append(ids, h.(map[string]any)["_source"].(map[string]any)["k"].(string))
			}
		}
		return status, ids, out
	}
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"query": {"match_all": {}}, "sort": [{"k": {"order": "asc"}}]}`, []string{"a", "b", "c"}},
		{`{"query": {"bool": {"filter": [{"term": {"k": "b"}}]}}, "sort": ["k"]}`, []string{"b"}},
		{`{"query": {"bool": {"must": {"simple_query_string": {"query": "TIMED out", "fields": ["t"], "default_operator": "and"}}}}, "sort": [{"n": "desc"}]}`, []string{"b", "a"}},
		{`{"query": {"simple_query_string": {"query": "timed fine", "fields": ["t"], "default_operator": "or"}}, "sort": ["k"]}`, []string{"a", "b", "c"}},
		{`{"query": {"range": {"d": {"gte": "2026-01-01T00:00:00.002Z", "lt": "2026-01-02T00:00:00Z"}}}, "sort": ["k"]}`, []string{"a"}},
		{`{"query": {"terms": {"n": [1, 3]}}, "sort": ["k"]}`, []string{"a", "c"}},
		{`{"query": {"bool": {"must_not": [{"term": {"t": "out"}}]}}, "sort": ["k"]}`, []string{"c"}},
		{`{"query": {"match_all": {}}, "sort": [{"d": "desc"}, {"k": "desc"}], "search_after": [1767225600002, "a"], "size": 5}`, []string{"b"}},
		{`{"query": {"match_all": {}}, "sort": ["k"], "size": 1, "track_total_hits": false}`, []string{"a"}},
	} {
		status, ids, _ := search(tc.body)
		require.Equal(t, 200, status, tc.body)
		require.Equal(t, tc.want, ids, tc.body)
	}
	for _, body := range []string{
		`{"query": {"match": {"t": "x"}}}`,
		`{"query": {"bool": {"should": []}}}`,
		`{"query": {"simple_query_string": {"query": "-timed", "fields": ["t"]}}}`,
		`{"query": {"simple_query_string": {"query": "timed"}}}`,
		`{"query": {"match_all": {}}, "from": 5}`,
		`{"query": {"match_all": {}}, "sort": ["k"], "search_after": ["a", 1]}`,
		`{"query": {"match_all": {}}, "size": 10001}`,
		`{"query": {"bool": {"filter": null}}}`,
	} {
		status, _, _ := search(body)
		require.Equal(t, 400, status, body)
	}
	status, _, out := search(`{"query": {"match_all": {}}, "sort": ["t"]}`)
	require.Equal(t, 400, status, "text fields do not sort")
	require.Equal(t, "search_phase_execution_exception", errType(out))

	status, _ = call(t, srv, http.MethodPost, "/nothing/_search", js, `{"query": {"match_all": {}}}`)
	require.Equal(t, 404, status, "a named index must exist")
	status, _, _ = search(`{"query": {"match_all": {}}, "sort": [{"k": "asc"}]}`)
	require.Equal(t, 200, status)
	status, out = call(t, srv, http.MethodPost, "/nothing*/_search", js, `{"query": {"match_all": {}}}`)
	require.Equal(t, 200, status, "a wildcard matching nothing is no hit")
	require.Empty(t, out["hits"].(map[string]any)["hits"])
}

func TestAuthAndProduct(t *testing.T) {
	t.Parallel()
	srv := estest.New(t, estest.WithAPIKey("k3y"))
	status, out := call(t, srv, http.MethodGet, "/", "", "")
	require.Equal(t, 401, status)
	require.Equal(t, "security_exception", errType(out))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Authorization", "ApiKey k3y")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	other := estest.New(t, estest.WithoutProductHeader())
	res, err = http.Get(other.URL + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Empty(t, res.Header.Get("X-Elastic-Product"))
}

func TestTemplatesAndMappingsAreChecked(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	for _, body := range []string{
		`{"index_patterns": ["x-*"], "template": {"mappings": {"properties": {"a": {"type": "strange"}}}}}`,
		`{"index_patterns": ["x-*"], "template": {"mappings": {"properties": {"a": {"type": "text", "analyzer": "undefined"}}}}}`,
		`{"index_patterns": ["x-*"], "template": {"settings": {"index.colour": "red"}}}`,
		`{"index_patterns": ["x-*"], "composed_of": ["y"]}`,
		`{"template": {}}`,
	} {
		status, _ := call(t, srv, http.MethodPut, "/_index_template/x", js, body)
		require.Equal(t, 400, status, body)
	}
	status, _ := call(t, srv, http.MethodPut, "/_index_template/x", js, `{"index_patterns": "x-*", "template": {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "long"}}}}}`)
	require.Equal(t, 200, status)
	status, _ = call(t, srv, http.MethodPut, "/_index_template/x?create=true", js, `{"index_patterns": "x-*"}`)
	require.Equal(t, 400, status, "create=true does not replace")
	status, _ = call(t, srv, http.MethodPut, "/x-1/_doc/1", js, `{"a": 1}`)
	require.Equal(t, 201, status, "the template's mapping applies to a new index")
	status, out := call(t, srv, http.MethodPut, "/x-1/_doc/2", js, `{"b": 1}`)
	require.Equal(t, 400, status)
	require.Equal(t, "strict_dynamic_mapping_exception", errType(out))
	status, _ = call(t, srv, http.MethodPut, "/x-1", js, `{}`)
	require.Equal(t, 400, status, "resource_already_exists_exception")
	status, out = call(t, srv, http.MethodGet, "/_index_template/nope", "", "")
	require.Equal(t, 404, status)
	require.Equal(t, "resource_not_found_exception", errType(out))
	status, _ = call(t, srv, http.MethodGet, "/_cat/indices", "", "")
	require.Equal(t, 400, status, "no handler")
}
