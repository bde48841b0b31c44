package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// plainBinary is the binary without the race detector, for a test that
// measures memory (the race detector multiplies it). Built once, on demand;
// FRAISEQL_OBSERVERS_PLAIN_BINARY names another one (an older build, to see
// such a test fail before its fix).
var plainBinary = sync.OnceValues(func() (string, error) {
	if b := os.Getenv("FRAISEQL_OBSERVERS_PLAIN_BINARY"); b != "" {
		return b, nil
	}
	dir, err := os.MkdirTemp("", "fraiseql-observers-plain-")
	if err != nil {
		return "", err
	}
	return observertest.BuildBinary(dir)
})

// insertBig writes n changes of entity, each object_data holding about size
// bytes of JSON, in one transaction. The blob repeats one md5, so Postgres
// stores it compressed to a few kB: the stored size says nothing of the
// text size, which is what the listener must bound.
func insertBig(t *testing.T, pool *pgxpool.Pool, entity string, n, size int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		SELECT $1, i::text, 'INSERT', jsonb_build_object('i', i, 'blob', repeat(md5(i::text), $3 / 32))
		FROM generate_series(1, $2) AS i`, entity, n, size)
	require.NoError(t, err)
}

// insertBigObjects is insertBig with the JSON made of many small objects
// (about 64 bytes of text each), the shape that costs most once decoded.
func insertBigObjects(t *testing.T, pool *pgxpool.Pool, entity string, n, size int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		SELECT $1, i::text, 'INSERT', jsonb_build_object('i', i, 'items',
			(SELECT jsonb_agg(jsonb_build_object('k', g, 'v', md5((i * 1000003 + g)::text))) FROM generate_series(1, $3 / 64) AS g))
		FROM generate_series(1, $2) AS i`, entity, n, size)
	require.NoError(t, err)
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// A poison batch never stalls the listener, and memory follows the batch,
// not the rows: 30 changes of 10 MB of JSON committed in one transaction
// (the finding froze the checkpoint for good at 6.5 GB of RSS) are read a
// few at a time (listener.batch_bytes), each is delivered, the changes
// committed after them too, and the process's peak RSS stays under 1 GiB.
func TestLargeRowsDoNotStallOrGrowMemory(t *testing.T) {
	t.Parallel()
	bin, err := plainBinary()
	require.NoError(t, err)
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", map[string]string{
		"big":   fmt.Sprintf("entity: Big\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/big, body_template: '{\"i\": \"{{ i }}\"}'}\n", recv.URL()),
		"small": fmt.Sprintf("entity: Small\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/small}\n", recv.URL()),
	})
	opts := runOptions(url, cfg)
	opts.Binary, opts.LogLevel = bin, "info"
	if v := os.Getenv("TEST_GOMEMLIMIT"); v != "" {
		opts.Env = append(opts.Env, "GOMEMLIMIT="+v)
	}
	p := observertest.StartProcess(t, opts)

	insertBigObjects(t, pool, "Big", 30, 10<<20)
	var last int64
	for i := range 5 {
		last = observertest.InsertChange(t, pool, observertest.Change{Entity: "Small", ID: strconv.Itoa(i), Kind: "INSERT", Data: `{}`})
	}
	got := recv.WaitN(t, 35, 3*time.Minute)
	paths := map[string]int{}
	for _, d := range got {
		paths[d.Path]++
	}
	require.Equal(t, map[string]int{"/big": 30, "/small": 5}, paths)
	var cp int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT event_id FROM observer_checkpoints WHERE listener_id = 'it'`).Scan(&cp))
	require.Equal(t, last, cp, "the checkpoint passed every row")
	rss := peakRSS(t, p.Pid())
	t.Logf("peak RSS of run: %d MiB", rss>>20)
	require.Less(t, rss, int64(1<<30), "peak RSS through 30 rows of 10 MB")
	require.Greater(t, observertest.Metric(t, p.HTTPAddr(), "observer_batches_total"), 2.0, "the big rows took several batches")
}

// A change larger than listener.max_event_bytes is recorded in
// observer_skipped_events with its size and counted, and the changes after
// it are delivered.
func TestTooLargeRowIsSkipped(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := strings.Replace(webhookConfig("", map[string]string{
		"all": fmt.Sprintf("entity: \"*\"\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/all}\n", recv.URL()),
	}), "  poll_interval: 200ms\n", "  poll_interval: 200ms\n  max_event_bytes: 1MiB\n", 1)
	p := observertest.StartProcess(t, runOptions(url, cfg))

	insertBig(t, pool, "Big", 1, 2<<20)
	var big int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT max(pk_entity_change_log) FROM core.tb_entity_change_log`).Scan(&big))
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Small", ID: "1", Kind: "INSERT", Data: `{}`})
	d := recv.WaitN(t, 1, 30*time.Second)[0]
	var env map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &env))
	require.Equal(t, "Small", env["entity_type"])
	recv.Quiet(t, 300*time.Millisecond)

	var reason string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT reason FROM observer_skipped_events WHERE change_pk = $1`, big).Scan(&reason))
	require.Contains(t, reason, "more than listener.max_event_bytes (1048576)")
	require.Contains(t, reason, "too large")
	require.Equal(t, 1.0, observertest.Metric(t, p.HTTPAddr(), `observer_events_skipped_total{reason="too_large"}`))
}

// A batch that fails for its size is read again smaller, down to one row.
// The listener reads a view of the change log whose object_data costs 20 ms
// a row (fault injection: how slow a real row is depends on the machine),
// so a batch of 100 rows needs several times batch_timeout and one row a
// small part of it (the function is STABLE so that the view is flattened
// and, with scans other than the index's turned off, only the rows a batch
// takes pay): every change is still delivered, and the failures are counted.
func TestBatchOverItsDeadlineIsSplit(t *testing.T) {
	t.Parallel()
	bin, err := plainBinary()
	require.NoError(t, err)
	pool, url := sqltest.NewDB(t)
	_, err = pool.Exec(context.Background(), `
CREATE FUNCTION core.slow_jsonb(j jsonb) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN PERFORM pg_sleep(0.02); RETURN j; END $$;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET enable_seqscan = off', current_database());
  EXECUTE format('ALTER DATABASE %I SET enable_bitmapscan = off', current_database()); END $$;
CREATE VIEW core.v_slow_change_log AS
  SELECT pk_entity_change_log, id, txid, modification_type, object_type, object_id,
    core.slow_jsonb(object_data) AS object_data, object_data_before, updated_fields, extra_metadata,
    fk_contact, tenant_id, fk_customer_org, created_at
  FROM core.tb_entity_change_log`)
	require.NoError(t, err)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := strings.Replace(webhookConfig("", map[string]string{
		"big": fmt.Sprintf("entity: Big\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/big, body_template: '{\"i\": \"{{ i }}\"}'}\n", recv.URL()),
	}), "  poll_interval: 200ms\n", "  poll_interval: 200ms\n  table: core.v_slow_change_log\n  batch_timeout: 1s\n", 1)
	opts := runOptions(url, cfg)
	opts.Binary = bin
	p := observertest.StartProcess(t, opts)

	insertBig(t, pool, "Big", 100, 1<<10)
	recv.WaitN(t, 100, 3*time.Minute)
	recv.Quiet(t, 300*time.Millisecond)
	require.Greater(t, observertest.Metric(t, p.HTTPAddr(), "observer_batch_errors_total"), 0.0, "the first batches ran over their deadline")
	require.Contains(t, p.Log(), "listener: batch failed; it will be read again, smaller")
}

// A listener that keeps failing its batch is not ready, and status names
// the failure: here every batch fails because dedup runs on a Redis that
// does not answer, with on_error: pause.
func TestFailingBatchesMakeReadyzAndStatusDegraded(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	cfg := webhookConfig("redis: {url: 'redis://127.0.0.1:1/0'}\ndedup: {backend: redis, on_error: pause}\n", map[string]string{
		"all": "entity: \"*\"\nevents: [INSERT]\nactions:\n  - {type: log}\n",
	})
	p := observertest.StartProcess(t, runOptions(url, cfg))
	ready := func() (int, string) {
		resp, err := http.Get("http://" + p.HTTPAddr() + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, _ := ready()
	require.Equal(t, http.StatusOK, code, "ready before any change")

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	var body string
	require.Eventually(t, func() bool {
		code, body = ready()
		return code == http.StatusServiceUnavailable
	}, 30*time.Second, 100*time.Millisecond)
	require.Contains(t, body, "the listener failed")
	require.Contains(t, body, "deduplicate")

	var out []byte
	require.Eventually(t, func() bool { // status reads the heartbeat (every 5s)
		out, _ = exec.Command(binary, "status", "--database-url", url, "--listener", "it", "--format", "json").Output()
		return strings.Contains(string(out), "batches in a row")
	}, 30*time.Second, 500*time.Millisecond)
	var st struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems"`
	}
	require.NoError(t, json.Unmarshal(out, &st))
	require.Equal(t, "degraded", st.Status)
	require.Contains(t, strings.Join(st.Problems, "\n"), "the leader failed")
}

// A change log that does not exist is an error at start, with a hint, not
// a failure logged every second.
func TestMissingChangeLogFailsAtStart(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	cfg := strings.Replace(webhookConfig("", map[string]string{
		"all": "entity: \"*\"\nevents: [INSERT]\nactions:\n  - {type: log}\n",
	}), "  id: it\n", "  id: it\n  table: app.no_such_log\n", 1)
	path := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "run", "--config", path, "--database-url", url, "--http-addr", "").CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	require.Equal(t, 1, ee.ExitCode(), "%s", out)
	require.Contains(t, string(out), "listener.table app.no_such_log does not exist")
	require.Contains(t, string(out), "hint: set listener.table to your change-log table")
}
