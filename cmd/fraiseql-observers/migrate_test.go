package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

func runMigrateCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := sqltest.NewEmptyDB(t)

	code, out, errOut := runMigrateCLI(t, "migrate", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "river")
	require.Contains(t, out, "00001_change_log.sql")
	require.Regexp(t, `applied [1-9][0-9]* migrations; schema is up to date`, out)

	code, out, errOut = runMigrateCLI(t, "migrate", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "applied 0 migrations; schema is up to date\n", out)

	code, out, errOut = runMigrateCLI(t, "migrate", "--database-url", url, "--status")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "00005_observer_tables.sql")
	require.NotContains(t, out, " pending\n")
	require.Contains(t, out, "schema is up to date")
}

func TestMigrateCommandJSON(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)

	code, out, errOut := runMigrateCLI(t, "migrate", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var report migrateReport
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Empty(t, report.Applied)
	require.True(t, report.UpToDate)

	code, out, errOut = runMigrateCLI(t, "migrate", "--database-url", url, "--format", "json", "--status")
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.NotEmpty(t, report.Migrations)
	require.True(t, report.UpToDate)
}

func TestMigrateCommandUnreachable(t *testing.T) {
	t.Parallel()
	// Port 1 refuses connections.
	code, out, errOut := runMigrateCLI(t, "migrate", "--database-url",
		"postgres://alice:s3cret@127.0.0.1:1/app?sslmode=disable&connect_timeout=2")
	require.Equal(t, exitUsage, code)
	require.Empty(t, out)
	require.NotContains(t, errOut, "s3cret")
	require.Contains(t, errOut, "127.0.0.1:1")
	require.Contains(t, errOut, "DATABASE_URL")
}

func TestMigrateCommandBadFormat(t *testing.T) {
	t.Parallel()
	code, _, errOut := runMigrateCLI(t, "migrate", "--database-url", "postgres://x@127.0.0.1/db", "--format", "yaml")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--format")
}

// migrate --search installs Elasticsearch's index template and ILM policy
// when the configuration keeps the audit trail there; says there is
// nothing to install for Postgres; fails with a hint when the cluster does
// not answer.
func TestMigrateSearch(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	srv := estest.New(t)
	dir := t.TempDir()
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(yaml+"observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
		return p
	}
	es := write("es.yaml", "elasticsearch: {url: "+srv.URL+"}\naudit: {backend: elasticsearch}\n")
	code, out, errOut := runMigrateCLI(t, "migrate", "--database-url", url, "--search", "--config", es)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Elasticsearch's index template and ILM policy are in place")
	_, ok := srv.Template("fraiseql_events")
	require.True(t, ok, "the index template is installed")
	_, ok = srv.Policy("fraiseql_events_policy")
	require.True(t, ok, "the ILM policy is installed")

	pg := write("pg.yaml", "audit: {backend: postgres}\n")
	code, out, errOut = runMigrateCLI(t, "migrate", "--database-url", url, "--search", "--config", pg)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "the postgres backend's tables come with the migrations")

	srv.SetMode(estest.Refuse)
	code, _, errOut = runMigrateCLI(t, "migrate", "--database-url", url, "--search", "--config", es)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "install the Elasticsearch index template and ILM policy")
	require.Contains(t, errOut, "check elasticsearch.url")
}
