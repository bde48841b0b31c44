package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// golden compares got with testdata/name, or rewrites it with -update.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const retentionYAML = `retention: {change_log: 30d, completed_jobs: 7d, dead_letters: 30d, skipped_events: off}
observers:
  orders:
    entity: Order
    events: [INSERT]
    actions: [{type: log}]
`

// seedRetention writes 12 change-log rows 40 days old (2 of them needed by
// unfinished deliveries), 3 young ones, a checkpoint past them all, 4 old
// completed jobs and 5 old skipped events.
func seedRetention(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	statusSeed(t, pool, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
		SELECT 'Order', 'o-' || g, 'INSERT', '{}', now() - CASE WHEN g <= 12 THEN interval '40 days' ELSE interval '1 hour' END
		FROM generate_series(1, 15) g`)
	statusSeed(t, pool, `INSERT INTO observer_checkpoints (listener_id, change_log, txid, event_id)
		SELECT 'default', 'core.tb_entity_change_log', txid, pk_entity_change_log
		FROM core.tb_entity_change_log ORDER BY pk_entity_change_log DESC LIMIT 1`)
	statusSeed(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		VALUES ($1, '{"seq": 1}', 'discarded', 5, now()), ($1, '{"seq": 2}', 'retryable', 5, NULL)`, obsriver.ActionKind)
	statusSeed(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		SELECT $1, '{"seq": 3}', 'completed', 5, now() - interval '8 days' FROM generate_series(1, 4)`, obsriver.ActionKind)
	statusSeed(t, pool, `INSERT INTO observer_skipped_events (listener_id, change_pk, reason, created_at)
		SELECT 'default', g, 'bad json', now() - interval '400 days' FROM generate_series(1, 5) g`)
}

func retentionCount(t *testing.T, pool *pgxpool.Pool, sql string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(t.Context(), sql).Scan(&n))
	return n
}

// The text report with its moving parts (dates, the checkpoint's txid,
// the temporary file) replaced.
func normalizeRetention(s, cfgPath string) string {
	s = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d UTC`).ReplaceAllString(s, "YYYY-MM-DD HH:MM UTC")
	s = regexp.MustCompile(`txid \d+`).ReplaceAllString(s, "txid N")
	return regexp.MustCompile(regexp.QuoteMeta(cfgPath)).ReplaceAllString(s, "observers.yaml")
}

// --dry-run counts what would go and deletes nothing; the real run then
// deletes exactly that, with progress on stderr, and a second run finds
// nothing.
func TestRetentionCommand(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedRetention(t, pool)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(retentionYAML), 0o600))

	code, out, errOut := runCLI(t, "retention", "--database-url", url, "--config", cfg, "--dry-run", "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var rep retentionReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.True(t, rep.DryRun)
	require.Equal(t, cfg, rep.Config)
	require.Equal(t, "core.tb_entity_change_log", rep.ChangeLog)
	require.Equal(t, int64(14), rep.Total)
	rows := map[string]int64{}
	for _, tr := range rep.Tables {
		rows[tr.Table] = tr.Rows
		if tr.Table == observers.RetentionChangeLog {
			require.Equal(t, int64(2), tr.Pinned)
			require.Equal(t, "default", tr.HeldBy)
			require.Equal(t, int64(15), tr.Checkpoint.PK)
			require.Equal(t, "30d", tr.Period)
			require.NotNil(t, tr.Before)
		}
		if tr.Table == observers.RetentionSkippedEvents {
			require.Equal(t, "off", tr.Period)
			require.Nil(t, tr.Before)
		}
	}
	require.Equal(t, map[string]int64{"change_log": 10, "completed_jobs": 4, "dead_letters": 0, "skipped_events": 0, "audit": 0, "search_tombstones": 0}, rows)

	code, out, errOut = runCLI(t, "retention", "--database-url", url, "--config", cfg, "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	golden(t, "retention_dry_run.golden", normalizeRetention(out, cfg))
	require.Equal(t, int64(15), retentionCount(t, pool, `SELECT count(*) FROM core.tb_entity_change_log`), "a dry run deletes nothing")
	require.Equal(t, int64(6), retentionCount(t, pool, `SELECT count(*) FROM river_job`))

	code, out, errOut = runCLI(t, "retention", "--database-url", url, "--config", cfg)
	require.Equal(t, exitOK, code, errOut)
	golden(t, "retention.golden", normalizeRetention(out, cfg))
	require.Contains(t, errOut, "deleting change_log: 10,", "plain progress lines off a terminal")
	require.Contains(t, errOut, "deleting completed_jobs: 4,")
	require.Equal(t, int64(5), retentionCount(t, pool, `SELECT count(*) FROM core.tb_entity_change_log`))
	require.Equal(t, int64(2), retentionCount(t, pool, `SELECT count(*) FROM core.tb_entity_change_log WHERE pk_entity_change_log IN (1, 2)`),
		"the rows of a dead letter and of a delivery waiting for its retry stay")
	require.Equal(t, int64(2), retentionCount(t, pool, `SELECT count(*) FROM river_job`))
	require.Equal(t, int64(5), retentionCount(t, pool, `SELECT count(*) FROM observer_skipped_events`), "skipped_events: off")

	code, out, _ = runCLI(t, "retention", "--database-url", url, "--config", cfg, "--format", "json")
	require.Equal(t, exitOK, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, int64(0), rep.Total)
}

// Without --config the configuration stored last applies (that of `run`),
// else the defaults, which keep the change log.
func TestRetentionCommandStoredConfig(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedRetention(t, pool)

	code, out, errOut := runCLI(t, "retention", "--database-url", url, "--dry-run", "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var rep retentionReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Contains(t, rep.Config, "defaults")
	require.Equal(t, "off", rep.Tables[3].Period, "the change log is kept by default")
	require.Equal(t, int64(4+5), rep.Total, "completed jobs older than 1d, skipped events older than 30d")

	parsed, _, err := observers.ParseWithEnv("stored.yaml", []byte(retentionYAML), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	v, err := obsriver.NewConfigStore(pool).Register(t.Context(), parsed)
	require.NoError(t, err)
	code, out, errOut = runCLI(t, "retention", "--database-url", url, "--dry-run", "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Contains(t, rep.Config, "version ")
	require.Contains(t, rep.Config, "(loaded last by run)")
	require.Contains(t, rep.Config, jsonNumber(v.ID))
	require.Equal(t, int64(14), rep.Total)
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Bad usage, an invalid --config (with the place and a hint) and an
// unreachable database exit 2.
func TestRetentionCommandErrors(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("retention: {change_log: 30}\n"), 0o600))

	code, _, errOut := runCLI(t, "retention", "--database-url", url, "--config", bad, "--dry-run")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "bad.yaml:1:25: retention.change_log: 30 has no unit")
	require.Contains(t, errOut, "hint: use a period such as 30d, 1w or 24h, or off to keep the rows forever")
	require.Contains(t, errOut, "hint: run `fraiseql-observers validate-config")

	code, _, errOut = runCLI(t, "retention", "--database-url", url, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "missing.yaml")

	code, _, errOut = runCLI(t, "retention", "--database-url", url, "--format", "yaml")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "hint: use --format text or --format json")

	code, _, errOut = runCLI(t, "retention", "--database-url", "postgres://postgres:s3cret@127.0.0.1:1/x", "--dry-run")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "cannot reach the database")
	require.NotContains(t, errOut, "s3cret", "the password never shows")
}
