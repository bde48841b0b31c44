package observers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

const searchObs = "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"

// The elasticsearch:, search: and audit: blocks: defaults without them, an
// audit: block on unless enabled: false, every field read.
func TestConfigSearchAndAudit(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	env := envOf(map[string]string{"ES_KEY": "k", "ES_USER": "u", "ES_PASS": "p"})
	defaults := observers.AuditConfig{Backend: "postgres", Buffer: 50_000, BatchSize: 5_000, FlushInterval: time.Second}
	on := defaults
	on.Enabled = true
	for _, tc := range []struct {
		src    string
		es     *observers.ElasticsearchConfig
		search string
		audit  observers.AuditConfig
	}{
		{"", nil, "postgres", defaults},
		{"audit: {}\n", nil, "postgres", on},
		{"audit: {enabled: false}\n", nil, "postgres", defaults},
		{"audit: {backend: elasticsearch, enabled: false}\n", nil, "postgres", observers.AuditConfig{
			Backend: "elasticsearch", Buffer: 50_000, BatchSize: 5_000, FlushInterval: time.Second}},
		{"audit: {buffer: 100, batch_size: 100, flush_interval: 250ms}\n", nil, "postgres", observers.AuditConfig{
			Enabled: true, Backend: "postgres", Buffer: 100, BatchSize: 100, FlushInterval: 250 * time.Millisecond}},
		{"elasticsearch: {url: 'https://es.example.com:9200', api_key_env: ES_KEY}\nsearch: {backend: elasticsearch}\naudit: {backend: elasticsearch}\n",
			&observers.ElasticsearchConfig{URL: "https://es.example.com:9200", APIKeyEnv: "ES_KEY"}, "elasticsearch",
			observers.AuditConfig{Enabled: true, Backend: "elasticsearch", Buffer: 50_000, BatchSize: 5_000, FlushInterval: time.Second}},
		{"elasticsearch: {url: 'http://127.0.0.1:9200/prefix', username_env: ES_USER, password_env: ES_PASS, ca_file: ca.pem}\n",
			&observers.ElasticsearchConfig{URL: "http://127.0.0.1:9200/prefix", UsernameEnv: "ES_USER", PasswordEnv: "ES_PASS", CAFile: "ca.pem"},
			"postgres", defaults},
		{"elasticsearch: {url: 'http://localhost:9200'}\nsearch: {backend: postgres}\n",
			&observers.ElasticsearchConfig{URL: "http://localhost:9200"}, "postgres", defaults},
	} {
		cfg, diags, err := observers.ParseWithEnv("s.yaml", []byte(tc.src+searchObs), env)
		require.NoError(t, err, "%s: %v", tc.src, diags)
		require.Empty(t, diags, tc.src)
		require.Equal(t, tc.es, cfg.Elasticsearch, tc.src)
		require.Equal(t, tc.search, cfg.Search.Backend, tc.src)
		require.Equal(t, tc.audit, cfg.Audit, tc.src)
		require.NoError(t, cfg.Resolve(env), tc.src)
		require.NoError(t, schemaValidate(t, s, []byte(tc.src+searchObs)), "the schema accepts it: %s", tc.src)
	}
}

// Mistakes are reported at their place with a hint; the schema rejects the
// ones it can see.
func TestConfigSearchErrors(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	const addES = "add a top-level elasticsearch: {url: https://es.example.com:9200, api_key_env: ES_API_KEY}, or use backend: postgres"
	const urlHint = "write the cluster's address, e.g. https://es.example.com:9200"
	for _, tc := range []struct {
		src, msg, hint string
		schemaSees     bool
	}{
		{"search: {backend: elasticsearch}\n",
			"x.yaml:1:19: search.backend is elasticsearch but the file has no elasticsearch: block", addES, true},
		{"audit:\n  backend: elasticsearch\n",
			"x.yaml:2:12: audit.backend is elasticsearch but the file has no elasticsearch: block", addES, true},
		{"search: {backend: solr}\n", `x.yaml:1:19: unknown search.backend "solr"`, "use one of postgres, elasticsearch", true},
		{"audit: {backend: redis}\n", `x.yaml:1:18: unknown audit.backend "redis"`, "use one of postgres, elasticsearch", true},
		{"search: {backnd: postgres}\n", `x.yaml:1:10: unknown key "backnd" in search`, `did you mean "backend"?`, true},
		{"audit: {enabled: yes please}\n", "x.yaml:1:18: audit.enabled must be true or false, got a string", "", true},
		{"audit: {buffer: 0}\n", "x.yaml:1:17: audit.buffer must be positive, got 0", "", true},
		{"audit: {buffer: 2000000}\n", "x.yaml:1:17: audit.buffer (2000000) is more than 1000000", "use at most 1000000", true},
		{"audit: {batch_size: 20000}\n", "x.yaml:1:21: audit.batch_size (20000) is more than 10000", "use at most 10000", true},
		{"audit: {buffer: 100, batch_size: 500}\n", "x.yaml:1:34: audit.batch_size (500) is more than audit.buffer (100)",
			"lower batch_size or raise buffer", false},
		{"audit: {flush_interval: 5}\n", "x.yaml:1:25: audit.flush_interval: 5 has no unit", "500ms", true},
		{"audit: {flush_interval: 2m}\n", "x.yaml:1:25: audit.flush_interval (2m) is longer than 1m", "use 1s to 10s", false},
		{"elasticsearch: {api_key_env: K}\n", "x.yaml:1:1: elasticsearch.url is required", urlHint, true},
		{"elasticsearch: {url: 'ftp://es.example.com'}\n", "x.yaml:1:22: elasticsearch.url is not an http or https URL with a host", urlHint, true},
		{"elasticsearch: {url: 'es.example.com:9200'}\n", "x.yaml:1:22: elasticsearch.url is not an http or https URL with a host", urlHint, true},
		{"elasticsearch: {url: 'https://'}\n", "x.yaml:1:22: elasticsearch.url is not an http or https URL with a host", urlHint, true},
		{"elasticsearch:\n  url: 'https://elastic:s3cr3t@es.example.com:9200'\n", "x.yaml:2:8: elasticsearch.url must not hold credentials",
			"name the variables that hold them in username_env and password_env", true},
		{"elasticsearch: {url: 'https://es.example.com/?pretty'}\n", "x.yaml:1:22: elasticsearch.url must not have a query or fragment", urlHint, true},
		{"elasticsearch:\n  url: 'https://es.example.com'\n  username_env: U\n  password_env: P\n  api_key_env: K\n",
			"x.yaml:5:3: elasticsearch: api_key_env and username_env/password_env exclude each other",
			"authenticate with an API key or with a user name and password, not both", true},
		{"elasticsearch: {url: 'https://es.example.com', username_env: U}\n",
			"x.yaml:1:1: elasticsearch: username_env and password_env go together", "use api_key_env instead", true},
		{"elasticsearch: {url: 'https://es.example.com', api_key_env: 'my-secret-key'}\n",
			`x.yaml:1:61: elasticsearch.api_key_env must name an environment variable, got "my-secret-key"`, "not its value", true},
		{"elasticsearch: {url: 'https://es.example.com', apikey_env: K}\n",
			`x.yaml:1:48: unknown key "apikey_env" in elasticsearch`, `did you mean "api_key_env"?`, true},
		{"elasticsearch: https://es.example.com\n", "x.yaml:1:16: elasticsearch must be a mapping, got a string", "", true},
	} {
		_, diags, err := observers.ParseWithEnv("x.yaml", []byte(tc.src+searchObs), envOf(map[string]string{"K": "k", "U": "u", "P": "p"}))
		require.Error(t, err, tc.src)
		require.NotEmpty(t, diags.Errors(), tc.src)
		d := diags.Errors()[0]
		require.Equal(t, tc.msg, firstLine(d.String()), tc.src)
		require.Len(t, diags.Errors(), 1, "%s: %v", tc.src, diags)
		require.Contains(t, d.Hint, tc.hint, tc.src)
		require.NotContains(t, d.String(), "s3cr3t", "a URL's password is never quoted")
		if tc.schemaSees {
			require.Error(t, schemaValidate(t, s, []byte(tc.src+searchObs)), "the schema rejects it too: %s", tc.src)
		}
	}
}

// An unset *_env variable of the elasticsearch: block is a warning when
// validating and an error for `run` (Resolve), naming the variable only.
func TestConfigElasticsearchEnv(t *testing.T) {
	t.Parallel()
	src := "elasticsearch:\n  url: 'https://es.example.com:9200'\n  username_env: ES_USER\n  password_env: ES_PASS\n" + searchObs
	cfg, diags, err := observers.ParseWithEnv("e.yaml", []byte(src), envOf(map[string]string{"ES_USER": "elastic"}))
	require.NoError(t, err)
	var warnings []string
	for _, d := range diags {
		warnings = append(warnings, firstLine(d.String()))
	}
	require.Equal(t, []string{"e.yaml:4:17: warning: environment variable ES_PASS (elasticsearch.password_env) is not set"}, warnings)

	err = cfg.Resolve(envOf(map[string]string{"ES_USER": "elastic"}))
	require.ErrorContains(t, err, "environment variable ES_PASS (elasticsearch.password_env) is not set")
	require.NotContains(t, err.Error(), "elastic\"")

	creds, err := cfg.Elasticsearch.ResolvedCredentials(envOf(map[string]string{"ES_USER": "elastic", "ES_PASS": "pw"}))
	require.NoError(t, err)
	require.Equal(t, observers.ElasticsearchCredentials{Username: "elastic", Password: "pw"}, creds)
	require.Equal(t, "basic", cfg.Elasticsearch.Auth())

	cfg, _, err = observers.ParseWithEnv("e.yaml", []byte("elasticsearch: {url: 'https://es:9200', api_key_env: ES_KEY}\n"+searchObs), envOf(nil))
	require.NoError(t, err)
	require.ErrorContains(t, cfg.Resolve(envOf(map[string]string{"ES_KEY": ""})), "ES_KEY (elasticsearch.api_key_env) is not set")
	creds, err = cfg.Elasticsearch.ResolvedCredentials(envOf(map[string]string{"ES_KEY": "a2V5"}))
	require.NoError(t, err)
	require.Equal(t, observers.ElasticsearchCredentials{APIKey: "a2V5"}, creds)
	require.Equal(t, "api_key", cfg.Elasticsearch.Auth())
}
