package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// --detailed and JSON show the elasticsearch:, search: and audit: blocks
// with their defaults, by variable names, never a credential; an unset
// variable is a warning here (`run` refuses it).
func TestValidateConfigSearchAndAudit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "search.yaml")
	require.NoError(t, os.WriteFile(path, []byte("elasticsearch: {url: 'https://es.example.com:9200', username_env: ES_USER, password_env: ES_PASS, ca_file: ca.pem}\n"+
		"search: {backend: elasticsearch}\naudit: {batch_size: 200}\n"+
		"observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	env := map[string]string{"ES_USER": "elastic-never-shown"}
	code, out := runValidate(t, env, validateConfigOpts{File: path, Detailed: true})
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "\nelasticsearch: url=https://es.example.com:9200 auth=basic username_env=ES_USER password_env=ES_PASS ca_file=ca.pem\n"+
		"search:   backend=elasticsearch\naudit:    backend=postgres buffer=50000 batch_size=200 flush_interval=1s\n")
	require.Contains(t, out, "search.yaml:1:90: warning: environment variable ES_PASS (elasticsearch.password_env) is not set")
	require.NotContains(t, out, "elastic-never-shown")

	code, out = runValidate(t, env, validateConfigOpts{File: path, Format: "json"})
	require.Equal(t, exitOK, code, out)
	var report validateReport
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Equal(t, &esView{URL: "https://es.example.com:9200", Auth: "basic", UsernameEnv: "ES_USER", PasswordEnv: "ES_PASS", CAFile: "ca.pem"},
		report.Elasticsearch)
	require.Equal(t, &searchView{Backend: "elasticsearch"}, report.Search)
	require.Equal(t, &auditView{Enabled: true, Backend: "postgres", Buffer: 50000, BatchSize: 200, FlushInterval: "1s"}, report.Audit)
	require.NotContains(t, out, "elastic-never-shown")

	off := filepath.Join(t.TempDir(), "off.yaml")
	require.NoError(t, os.WriteFile(off, []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	code, out = runValidate(t, nil, validateConfigOpts{File: off, Detailed: true})
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "\nsearch:   backend=postgres\naudit:    off\n")
	require.NotContains(t, out, "elasticsearch:")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("audit:\n  backend: elasticsearch\n"), 0o600))
	code, out = runValidate(t, nil, validateConfigOpts{File: bad})
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "bad.yaml:2:12: audit.backend is elasticsearch but the file has no elasticsearch: block")
	require.Contains(t, out, "hint: add a top-level elasticsearch: {url: https://es.example.com:9200, api_key_env: ES_API_KEY}, or use backend: postgres")
}
