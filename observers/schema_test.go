package observers_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
)

const schemaPath = "../schema/observers.schema.json"

var updateSchema = flag.Bool("update", false, "rewrite the action types' part of "+schemaPath+" from the registry")

// The schema's action part comes from the registered action types: the
// type enum is their names, each selects its own definition, and each
// definition is the type's Schema(). `go test ./observers -run
// TestSchemaActionTypes -update` (part of `just generate`) rewrites it.
func TestSchemaActionTypes(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, json.Unmarshal(data, &root))
	defs := root["$defs"].(map[string]any)
	names := observers.ActionTypeNames()
	want := map[string]any{}
	var allOf []any
	for _, name := range names {
		typ, _ := observers.LookupActionType(name)
		var def any
		require.NoError(t, json.Unmarshal(typ.Schema(), &def), name)
		want[name+"Action"] = def
		allOf = append(allOf, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": name}}},
			"then": map[string]any{"$ref": "#/$defs/" + name + "Action"},
		})
	}
	enum := make([]any, len(names))
	queues := map[string]any{}
	for i, n := range names {
		enum[i] = n
		desc := fmt.Sprintf("workers of the %s queue (fraiseql_observers_%s), at most max_parallelism; default max_parallelism", n, n)
		typ, _ := observers.LookupActionType(n)
		if pl, ok := typ.(observers.ParallelismLimiter); ok {
			desc += fmt.Sprintf(", and at most %d", pl.MaxParallelismDefault())
		}
		queues[n] = map[string]any{"type": "integer", "minimum": 1, "maximum": observers.ConcurrencyMaxParallelismMax, "description": desc}
	}
	allOf, queues = jsonRoundTrip(t, allOf), jsonRoundTrip(t, queues)
	if *updateSchema {
		for k := range defs {
			if strings.HasSuffix(k, "Action") {
				delete(defs, k)
			}
		}
		for k, v := range want {
			defs[k] = v
		}
		action := defs["action"].(map[string]any)
		action["properties"].(map[string]any)["type"] = map[string]any{"enum": enum}
		action["allOf"] = allOf
		conc := root["properties"].(map[string]any)["concurrency"].(map[string]any)
		conc["properties"].(map[string]any)["queues"].(map[string]any)["properties"] = queues
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(root))
		require.NoError(t, os.WriteFile(schemaPath, b.Bytes(), 0o644))
		return
	}
	hint := "run `go test ./observers -run TestSchemaActionTypes -update` (or `just generate`)"
	for k := range defs {
		if strings.HasSuffix(k, "Action") {
			require.Contains(t, want, k, "%s: $defs/%s is no registered action type; %s", schemaPath, k, hint)
		}
	}
	for k, v := range want {
		require.Equal(t, v, defs[k], "%s: $defs/%s differs from the type's Schema(); %s", schemaPath, k, hint)
	}
	action := defs["action"].(map[string]any)
	require.Equal(t, enum, action["properties"].(map[string]any)["type"].(map[string]any)["enum"], hint)
	require.Equal(t, allOf, action["allOf"], hint)
	conc := root["properties"].(map[string]any)["concurrency"].(map[string]any)
	require.Equal(t, queues, conc["properties"].(map[string]any)["queues"].(map[string]any)["properties"], hint)
}

// jsonRoundTrip gives v as encoding/json decodes it (numbers as float64).
func jsonRoundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out T
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// The schema names exactly the keys the decoder accepts, at the same place,
// and rejects every other key.
func TestSchemaKeys(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(schemaPath)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, json.Unmarshal(data, &root))
	at := func(ptr string) map[string]any {
		node := root
		for _, p := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
			if p == "" {
				continue
			}
			next, ok := node[p].(map[string]any)
			require.True(t, ok, "schema has no %s (at %q)", ptr, p)
			node = next
		}
		return node
	}
	keysOf := func(ptr string) []string {
		node := at(ptr)
		require.Equal(t, false, node["additionalProperties"], "%s must reject unknown keys", ptr)
		var keys []string
		for k := range at(ptr + "/properties") {
			keys = append(keys, k)
		}
		return keys
	}
	tables := map[string][]string{"/properties/concurrency/properties/queues": observers.ActionTypeNames()}
	for ptr, keys := range observers.KeyTables {
		tables[ptr] = keys
	}
	for _, name := range observers.ActionTypeNames() {
		tables["/$defs/"+name+"Action"] = observers.ActionTypeKeys(name)
	}
	for ptr, want := range tables {
		require.ElementsMatch(t, want, keysOf(ptr), "schema %s vs the decoder's key table", cmpOr(ptr, "top level"))
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource("observers.schema.json", doc))
	s, err := c.Compile("observers.schema.json")
	require.NoError(t, err)
	return s
}

// schemaValidate converts YAML to JSON and validates it against s.
func schemaValidate(t *testing.T, s *jsonschema.Schema, src []byte) error {
	t.Helper()
	j, err := yaml.YAMLToJSON(src)
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	require.NoError(t, err)
	return s.Validate(inst)
}

// everyBlock uses every block and action type; the loader accepts it, and so
// must the schema.
const everyBlock = `
listener: {id: x, table: core.tb_entity_change_log, batch_size: 10, poll_interval: 500ms}
allow_private_targets: false
workers: {max_workers: 50, fetch_cooldown: 5ms, fetch_poll_interval: 1s}
concurrency:
  max_parallelism: 50
  queues: {email: 5, webhook: 50, slack: 10, database: 4, log: 1, cache: 2, search: 3}
circuit_breaker: {enabled: true, failure_threshold: 0.5, success_threshold: 1, timeout: 1m, sample_size: 20, min_requests: 5, window: 1h30m, backend: redis}
smtp: {host: smtp.example.com, port: 465, from: a@example.com, username_env: SMTP_USER, password_env: SMTP_PASS, tls: tls, timeout: 10s}
redis: {url: "redis://127.0.0.1:6379/0", key_prefix: "app:"}
dedup: {enabled: true, backend: postgres, window: 5m, on_error: pause}
cache: {backend: redis, ttl: 30s}
retention: {change_log: 30d, completed_jobs: 1w12h, dead_letters: "off", skipped_events: 0}
admin: {token_env: ADMIN_TOKEN, basic_auth: {username: ops, password_env: ADMIN_PASSWORD}, riverui: true, riverui_write: false}
elasticsearch: {url: "https://es.example.com:9200", api_key_env: ES_API_KEY, ca_file: /etc/ssl/es-ca.pem}
search: {backend: elasticsearch}
audit: {enabled: true, backend: postgres, buffer: 20000, batch_size: 1000, flush_interval: 2s}
observers:
  all:
    entity: "*"
    events: [INSERT, updated, delete, CUSTOM]
    condition: "status == 'new'"
    retry: {max_attempts: 2, initial_delay: 1s, max_delay: 1m, backoff_strategy: fixed}
    actions:
      - {type: webhook, url: "https://example.com/h", signing_secret_env: S, headers: {X-A: b}, body_template: "{}", timeout: 5s, method: put, signature: fraiseql, circuit_breaker: {enabled: false}}
      - {type: slack, webhook_url_env: SLACK, channel: "#c", message_template: "m", timeout: 5s}
      - {type: email, to: [a@example.com, b@example.com], cc: c@example.com, reply_to: r@example.com, subject: s, body_template: b, html_template: "<p>h</p>"}
      - {type: email, to_template: "{{ email }}", subject_template: "s {{ id }}"}
      - {type: database, function_name: app.fn, params: {a: 1, b: [x]}, timeout: 5s}
      - {type: log, level: warn, message_template: "m"}
      - {type: cache, key_pattern: "app:order:{{ id }}:*", action: invalidate}
      - {type: search, index: orders}
`

// The example files and everyBlock, which the loader accepts, validate
// against the schema; typical mistakes do not.
func TestSchemaValidatesExamples(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	env := envOf(map[string]string{"S": "x", "SLACK": "https://hooks.example/x", "SMTP_USER": "u", "SMTP_PASS": "p"})
	for _, path := range []string{"../examples/observers.yaml", "testdata/valid.yaml", "everyBlock"} {
		src := []byte(everyBlock)
		if path != "everyBlock" {
			var err error
			src, err = os.ReadFile(path)
			require.NoError(t, err)
		}
		_, diags, err := observers.ParseWithEnv(path, src, env)
		require.NoError(t, err, "%s: %v", path, diags)
		require.NoError(t, schemaValidate(t, s, src), path)
	}

	obs := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"
	for name, src := range map[string]string{
		"unknown top key":       "listner: {id: x}\n" + obs,
		"concurrency typo":      "concurrency: {max_paralelism: 5}\n" + obs,
		"unknown queue":         "concurrency: {queues: {sms: 5}}\n" + obs,
		"zero workers":          "concurrency: {max_parallelism: 0}\n" + obs,
		"unknown action type":   "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: sms}]\n",
		"key of another type":   "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log, url: 'https://x'}]\n",
		"duration without unit": "listener: {poll_interval: 30}\n" + obs,
		"retention typo":        "retention: {changelog: 30d}\n" + obs,
		"period without unit":   "retention: {change_log: 30}\n" + obs,
		"period not a duration": "retention: {dead_letters: forever}\n" + obs,
		"unknown event":         "observers:\n  o:\n    entity: A\n    events: [INSERTED]\n    actions: [{type: log}]\n",
		"no actions":            "observers:\n  o:\n    entity: A\n    events: [INSERT]\n",
		"backend on a webhook":  "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhook, url: 'https://x/', circuit_breaker: {backend: redis}}]\n",
	} {
		require.Error(t, schemaValidate(t, s, []byte(src)), name)
		_, _, err := observers.Parse("x.yaml", []byte(src))
		require.Error(t, err, "%s: the loader rejects it too", name)
	}
}
