package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func runStatusCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(append([]string{"status"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func statusSeed(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pool.Exec(ctx, sql, args...)
	require.NoError(t, err)
}

// seedGroup writes a checkpoint and a leader whose heartbeat is leaderAge
// old, plus a standby with a fresh one.
func seedGroup(t *testing.T, pool *pgxpool.Pool, leaderAge time.Duration) {
	t.Helper()
	statusSeed(t, pool, `INSERT INTO observer_checkpoints (listener_id, event_id) VALUES ('default', 3)`)
	statusSeed(t, pool, `INSERT INTO observer_listeners (id, listener_id, host, pid, http_addr, role, version, started_at, heartbeat_at, leader_since)
		VALUES ('lead-1', 'default', 'node-a', 11, '127.0.0.1:8000', 'leader', 'v9.9.9', now(), now() - make_interval(secs => $1), now()),
		       ('stby-1', 'default', 'node-b', 12, '127.0.0.1:8001', 'standby', 'v9.9.9', now(), now(), NULL)`, leaderAge.Seconds())
	statusSeed(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		VALUES ($1, '{}', 'available', 5, NULL), ($1, '{}', 'discarded', 5, now()), ($1, '{}', 'cancelled', 5, now())`,
		obsriver.ActionKind)
}

func TestStatusCommandJSONHealthy(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedGroup(t, pool, 0)

	code, out, errOut := runStatusCLI(t, "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	require.Empty(t, errOut)

	// What `jq '.healthy_listeners'` reads: a JSON number.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	require.IsType(t, float64(0), raw["healthy_listeners"])
	require.InDelta(t, 2, raw["healthy_listeners"], 0)
	require.Equal(t, true, raw["healthy"])
	require.Equal(t, "healthy", raw["status"])
	require.Equal(t, "default", raw["listener_id"])
	for _, key := range []string{"leader", "listeners", "checkpoint", "lag_seconds", "lag_events",
		"horizon_blocker", "queue", "dlq_size", "circuit_breakers"} {
		require.Contains(t, raw, key)
	}
	leader := raw["leader"].(map[string]any)
	require.Equal(t, "lead-1", leader["instance_id"])
	require.Equal(t, "node-a", leader["host"])
	require.InDelta(t, 11, leader["pid"], 0)
	require.NotNil(t, leader["since"])
	inst := raw["listeners"].([]any)[0].(map[string]any)
	for _, key := range []string{"id", "host", "pid", "role", "heartbeat_age_seconds", "healthy", "http_addr", "version"} {
		require.Contains(t, inst, key)
	}
	require.Equal(t, "leader", inst["role"])
	cp := raw["checkpoint"].(map[string]any)
	require.InDelta(t, 3, cp["event_id"], 0)
	for _, key := range []string{"txid", "last_processed_at", "events_processed"} {
		require.Contains(t, cp, key)
	}
	require.InDelta(t, 2, raw["dlq_size"], 0)
	require.InDelta(t, 1, raw["queue"].(map[string]any)["available"], 0)
	require.Equal(t, []any{}, raw["circuit_breakers"])
}

func TestStatusCommandDegradedExitsOne(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedGroup(t, pool, time.Minute) // the leader stopped heartbeating

	code, out, errOut := runStatusCLI(t, "--database-url", url, "--format", "json")
	require.Equal(t, exitFailure, code, errOut)
	require.Empty(t, errOut, "the report is the output; no error line")
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	require.Equal(t, false, raw["healthy"])
	require.Equal(t, "degraded", raw["status"])
	require.Nil(t, raw["leader"])
	require.InDelta(t, 1, raw["healthy_listeners"], 0)

	code, out, _ = runStatusCLI(t, "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "Status:            degraded")
	require.Contains(t, out, "Leader:            none")
	require.Contains(t, out, "no leader: the last leader lead-1 has not sent a heartbeat")
	require.Regexp(t, `lead-1\s+leader\s+node-a\s+11\s+6\d\.\ds ago\s+unhealthy`, out)
}

func TestStatusCommandText(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedGroup(t, pool, 0)
	statusSeed(t, pool, `CREATE TABLE IF NOT EXISTS observer_circuit_breakers (
		name text PRIMARY KEY, state text NOT NULL, expiry timestamptz, counts jsonb, data jsonb, updated_at timestamptz)`)
	statusSeed(t, pool, `INSERT INTO observer_circuit_breakers (name, state, data) VALUES ('https://u:hunter2@hooks.example/x?token=s3cret', 'closed', '{}')`)

	code, out, errOut := runStatusCLI(t, "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Listener:          default\n")
	require.Contains(t, out, "Status:            healthy\n")
	require.Regexp(t, `Leader:\s+lead-1 \(host node-a, pid 11\) since \S+, heartbeat \d+\.\ds ago`, out)
	require.Contains(t, out, "Instances:         2 of 2 healthy")
	require.Regexp(t, `stby-1\s+standby\s+node-b\s+12\s+\d+\.\ds ago\s+healthy`, out)
	require.Contains(t, out, "Checkpoint:        event 3, txid 0")
	require.Contains(t, out, "Lag:               caught up")
	require.Contains(t, out, "Queue:             available 1, running 0")
	require.Contains(t, out, "DLQ:               2 (discarded 1, cancelled 1)")
	require.Contains(t, out, "Circuit breakers:  1, 0 open")
	require.Contains(t, out, "hooks.example")
	require.NotContains(t, out, "hunter2")
	require.NotContains(t, out, "s3cret")
	require.NotContains(t, out, "v9.9.9", "versions only with --detailed")

	code, out, errOut = runStatusCLI(t, "--database-url", url, "--detailed", "--listener", "default")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `lead-1\s+leader\s+node-a\s+11\s+\d+\.\ds ago\s+healthy\s+v9\.9\.9\s+127\.0\.0\.1:8000\s+\S+`, out)
}

func TestStatusCommandHorizonBlockerText(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedGroup(t, pool, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var pid int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id() /* blocker-marker */`).Scan(&pid, new(string)))

	// Another test's transaction may be older for a moment (xids are cluster-wide).
	var out string
	require.Eventually(t, func() bool {
		_, out, _ = runStatusCLI(t, "--database-url", url, "--detailed")
		return bytes.Contains([]byte(out), []byte("blocker-marker"))
	}, 20*time.Second, 50*time.Millisecond)
	require.Regexp(t, `Horizon blocker:\s+pid \d+ \(database fraiseql_observers_test_\S+, user \S+\), transaction open \d+\.\ds, idle in transaction`, out)
	require.Contains(t, out, fmt.Sprintf("Horizon blocker:   pid %d ", pid))
	require.Contains(t, out, "Blocking query:")

	_, out, _ = runStatusCLI(t, "--database-url", url)
	require.NotContains(t, out, "blocker-marker", "the query text only with --detailed")
}

func TestStatusCommandUnreachable(t *testing.T) {
	t.Parallel()
	code, out, errOut := runStatusCLI(t, "--database-url", "postgres://127.0.0.1:1/x", "--format", "json")
	require.Equal(t, exitUsage, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "cannot reach the database")
	require.Contains(t, errOut, "hint: ")
}

func TestStatusCommandUnmigrated(t *testing.T) {
	t.Parallel()
	url := sqltest.NewEmptyDB(t)
	code, _, errOut := runStatusCLI(t, "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "fraiseql-observers migrate")
}

func TestStatusCommandBadFormat(t *testing.T) {
	t.Parallel()
	code, _, errOut := runStatusCLI(t, "--database-url", "postgres://127.0.0.1:1/x", "--format", "yaml")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--format")
}
