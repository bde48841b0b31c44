package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func runDLQ(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(append([]string{"dlq"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// dlqFixtureConfig is configuration version 7 of the fixture. Its URL and
// signing secret must never appear in an output.
const dlqFixtureConfig = `listener:
  id: fixture
observers:
  order_webhook:
    entity: Order
    events: [INSERT]
    actions:
      - type: webhook
        url: https://hooks.example.com/orders?token=s3cret-token
        signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    retry: {max_attempts: 4, initial_delay: 2s, max_delay: 1m}
  invoice_audit:
    entity: Invoice
    events: [INSERT, UPDATE]
    actions:
      - type: log
        message_template: "invoice {{ entity_id }}"
      - type: webhook
        url: https://audit.example.com/invoices
        headers: {Authorization: Bearer s3cret-bearer, X-Source: fraiseql}
`

// seedDLQ writes a fixed dead-letter queue: configuration version 7; five
// changes; action jobs 1001 (cancelled, continuing completed batch job 900),
// 1002 (discarded after 4 attempts), 1003 (completed); and batch job 950,
// cancelled with three deliveries (950.0 and 950.1 for order_webhook,
// 950.2 for invoice_audit's second action). Five deliveries are dead.
func seedDLQ(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	statusSeed(t, pool, `INSERT INTO observer_config_versions (id, hash, source) VALUES (7, 'fixture-7', $1)`, dlqFixtureConfig)
	statusSeed(t, pool, `INSERT INTO core.tb_entity_change_log (pk_entity_change_log, id, object_type, object_id, modification_type, object_data, created_at)
		SELECT 100 + i, ('00000000-0000-4000-8000-00000000010' || i)::uuid, CASE WHEN i = 5 THEN 'Invoice' ELSE 'Order' END,
			CASE WHEN i = 5 THEN 'inv-1' ELSE 'ord-' || i END, 'INSERT', jsonb_build_object('n', i, 'total', 10 * i),
			'2025-01-02T03:00:00Z'::timestamptz + make_interval(secs => i)
		FROM generate_series(1, 5) AS i`)
	errs := func(n int, msg string) []string {
		var out []string
		for i := 1; i <= n; i++ {
			b, err := json.Marshal(map[string]any{"at": time.Date(2025, 1, 2, 3, 4, i, 0, time.UTC), "attempt": i, "error": msg, "trace": ""})
			require.NoError(t, err)
			out = append(out, string(b))
		}
		return out
	}
	action := func(seq int, observer string, batch int) string {
		b, err := json.Marshal(obsriver.ActionArgs{Seq: int64(100 + seq), EventID: "00000000-0000-4000-8000-00000000010" + string(rune('0'+seq)),
			Entity: "Order", Observer: observer, ActionType: "webhook", ConfigVersion: 7, Batch: int64(batch)})
		require.NoError(t, err)
		return string(b)
	}
	statusSeed(t, pool, `INSERT INTO river_job (id, kind, queue, args, state, attempt, max_attempts, errors, created_at, attempted_at, finalized_at, metadata) VALUES
		(900, 'fraiseql_observer_batch', 'fraiseql_observers_webhook', '{"action_type":"webhook","config_version":7,"deliveries":[{"observer":"order_webhook","action":0,"seqs":[101]}]}',
			'completed', 1, 25, NULL, '2025-01-02T03:04:00Z', '2025-01-02T03:04:00Z', '2025-01-02T03:04:01Z', '{}'),
		(1001, 'fraiseql_observer_action', 'fraiseql_observers_webhook', $1, 'cancelled', 1, 4, $4::jsonb[],
			'2025-01-02T03:04:01Z', '2025-01-02T03:04:01Z', '2025-01-02T03:05:00Z', '{}'),
		(1002, 'fraiseql_observer_action', 'fraiseql_observers_webhook', $2, 'discarded', 4, 4, $5::jsonb[],
			'2025-01-02T03:04:02Z', '2025-01-02T03:04:04Z', '2025-01-02T03:10:00Z', '{}'),
		(1003, 'fraiseql_observer_action', 'fraiseql_observers_webhook', $3, 'completed', 2, 4, $6::jsonb[],
			'2025-01-02T03:04:03Z', '2025-01-02T03:04:04Z', '2025-01-02T03:20:00Z', '{}'),
		(950, 'fraiseql_observer_batch', 'fraiseql_observers_webhook', '{"action_type":"webhook","config_version":7,"deliveries":[{"observer":"order_webhook","action":0,"seqs":[103,104]},{"observer":"invoice_audit","action":1,"seqs":[105]}]}',
			'cancelled', 1, 25, $7::jsonb[], '2025-01-02T03:30:00Z', '2025-01-02T03:30:00Z', '2025-01-02T04:00:00Z', '{}')`,
		action(1, "order_webhook", 900), action(2, "order_webhook", 0), action(3, "order_webhook", 0),
		errs(1, "webhook https://hooks.example.com/orders?token=REDACTED: status 400 Bad Request\n{\"error\": \"missing field customer\"}"),
		errs(4, "webhook https://hooks.example.com/orders?token=REDACTED: status 503 Service Unavailable"),
		errs(1, "webhook https://hooks.example.com/orders?token=REDACTED: status 503 Service Unavailable"),
		errs(1, "record batch outcomes: the batch job was cancelled"))
}

// jobsSnapshot is every river_job row as text, to check that nothing changed.
func jobsSnapshot(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(j::text, E'\n' ORDER BY id), '') FROM river_job j`).Scan(&s))
	return s
}

func TestDLQListText(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)

	code, out, errOut := runDLQ(t, "list", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	golden(t, "dlq/list.golden", out)
	require.NotContains(t, out, "s3cret")

	code, out, errOut = runDLQ(t, "list", "--database-url", url, "--limit", "2", "--offset", "1")
	require.Equal(t, exitOK, code, errOut)
	golden(t, "dlq/list_page.golden", out)

	code, out, _ = runDLQ(t, "list", "--database-url", url, "--observer", "nobody")
	require.Equal(t, exitOK, code)
	require.Equal(t, "no dead deliveries\n", out)
}

func TestDLQListJSONAndFilters(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	list := func(args ...string) dlqListView { return dlqList(t, url, args...) }
	ids := func(v dlqListView) []string {
		var out []string
		for _, d := range v.Deliveries {
			out = append(out, d.ID)
		}
		return out
	}

	v := list()
	require.EqualValues(t, 5, v.Total)
	require.Equal(t, []string{"950.0", "950.1", "950.2", "1002", "1001"}, ids(v))
	d := v.Deliveries[4]
	require.Equal(t, "cancelled", d.State)
	require.Equal(t, "order_webhook", d.Observer)
	require.Equal(t, "webhook", d.ActionType)
	require.Equal(t, int64(101), d.Seq)
	require.Equal(t, "Order", d.EntityType)
	require.Equal(t, "ord-1", d.EntityID)
	require.Equal(t, int64(900), d.BatchJobID)
	require.Equal(t, 1, d.Attempt)
	require.Equal(t, 4, d.MaxAttempts)
	require.Equal(t, "webhook https://hooks.example.com/orders?token=REDACTED: status 400 Bad Request", d.LastError)
	require.Equal(t, "msg_", d.WebhookID[:4])
	require.Equal(t, time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC), d.DiedAt.UTC())
	b := v.Deliveries[2]
	require.Equal(t, "invoice_audit", b.Observer)
	require.Equal(t, "Invoice", b.EntityType, "a batch delivery's entity comes from the change log")
	require.Equal(t, "inv-1", b.EntityID)
	require.Equal(t, "00000000-0000-4000-8000-000000000105", b.EventID)

	require.Equal(t, []string{"950.2"}, ids(list("--entity-type", "Invoice")))
	require.Equal(t, []string{"950.0", "950.1", "1002", "1001"}, ids(list("--entity-type", "Order")))
	require.Equal(t, []string{"950.2"}, ids(list("--observer", "invoice_audit")))
	require.Empty(t, ids(list("--since", "24h")))
	statusSeed(t, pool, `UPDATE river_job SET finalized_at = now() - interval '1 hour' WHERE id = 1002`)
	require.Equal(t, []string{"1002"}, ids(list("--since", "24h")))
	v = list("--limit", "1", "--offset", "4")
	require.EqualValues(t, 5, v.Total)
	require.Equal(t, []string{"1001"}, ids(v))
}

func TestDLQShow(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)

	code, out, errOut := runDLQ(t, "show", "1002", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	golden(t, "dlq/show_action.golden", out)
	code, out, errOut = runDLQ(t, "show", "950.2", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	golden(t, "dlq/show_batch.golden", out)
	require.NotContains(t, out, "s3cret", "the Authorization header is redacted")

	code, out, errOut = runDLQ(t, "show", "1001", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	require.NotContains(t, out, "s3cret")
	require.NotContains(t, out, "whsec_")
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "1001", v["id"])
	require.Equal(t, true, v["dead"])
	require.Equal(t, "msg_", v["webhook_id"].(string)[:4])
	ev := v["event"].(map[string]any)
	require.Equal(t, "00000000-0000-4000-8000-000000000101", ev["id"])
	require.Equal(t, map[string]any{"n": 1.0, "total": 10.0}, ev["data"])
	act := v["action_config"].(map[string]any)
	require.Equal(t, "webhook", act["type"])
	require.Contains(t, act["url"], "hooks.example.com")
	require.InDelta(t, 4, v["retry_policy"].(map[string]any)["max_attempts"], 0)
	attempts := v["attempts"].([]any)
	require.Len(t, attempts, 1)
	require.Contains(t, attempts[0].(map[string]any)["error"], "missing field customer", "show has the whole error")

	code, out, _ = runDLQ(t, "show", "1003", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, "a delivery that is not dead shows too")
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, false, v["dead"])
	require.Equal(t, "completed", v["state"])
}

func TestDLQStats(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	for _, by := range []string{"observer", "action-type", "error"} {
		code, out, errOut := runDLQ(t, "stats", "--by", by, "--database-url", url)
		require.Equal(t, exitOK, code, errOut)
		golden(t, "dlq/stats_"+by+".golden", out)
	}
	code, out, errOut := runDLQ(t, "stats", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var v dlqStatsView
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, "observer", v.By)
	require.EqualValues(t, 5, v.Total)
	require.Len(t, v.Groups, 2)
	require.Equal(t, obsriver.DeadGroup{Key: "order_webhook", Count: 4, Cancelled: 3, Discarded: 1,
		Oldest: time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC), Newest: time.Date(2025, 1, 2, 4, 0, 0, 0, time.UTC)},
		withUTC(v.Groups[0]))
}

func withUTC(g obsriver.DeadGroup) obsriver.DeadGroup {
	g.Oldest, g.Newest = g.Oldest.UTC(), g.Newest.UTC()
	return g
}

// status and dlq list count the same dead deliveries.
func TestDLQStatusAgrees(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	_, out, _ := runStatusCLI(t, "--database-url", url, "--format", "json")
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.InDelta(t, 5, st["dlq_size"], 0)
	require.Equal(t, map[string]any{"cancelled": 4.0, "discarded": 1.0}, st["dlq"])
	_, out, _ = runStatusCLI(t, "--database-url", url)
	require.Contains(t, out, "DLQ:               5 (discarded 1, cancelled 4)")
}

func TestDLQRetryAllDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	before := jobsSnapshot(t, pool)

	code, out, errOut := runDLQ(t, "retry-all", "--observer", "order_webhook", "--dry-run", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	golden(t, "dlq/retry_all_dry_run.golden", out)
	code, out, errOut = runDLQ(t, "retry-all", "--dry-run", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, true, v["dry_run"])
	require.InDelta(t, 5, v["retried"], 0)
	require.Len(t, v["deliveries"], 5)
	code, out, errOut = runDLQ(t, "retry", "1001", "950.1", "--dry-run", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "would retry 1001\nwould retry 950.1\nwould retry 2 deliveries, skipped 0, failed 0 (dry run: nothing changed)\n", out)
	code, _, errOut = runDLQ(t, "remove", "--all", "--older-than", "1d", "--dry-run", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)

	require.Equal(t, before, jobsSnapshot(t, pool), "a dry run changes nothing")
}

func TestDLQUsageAndUnknownIDs(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"show", "12x"}, exitUsage, `"12x" is not a dead-letter id`},
		{[]string{"show", "1.-1"}, exitUsage, "is not a dead-letter id"},
		{[]string{"show"}, exitUsage, "accepts 1 arg"},
		{[]string{"list", "--limit", "0"}, exitUsage, "--limit 0 is out of range"},
		{[]string{"list", "--since", "soon"}, exitUsage, "--since"},
		{[]string{"list", "--action-type", "webhok"}, exitUsage, "is not an action type"},
		{[]string{"list", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"stats", "--by", "colour"}, exitUsage, "--by"},
		{[]string{"remove"}, exitUsage, "no id given"},
		{[]string{"remove", "--all"}, exitUsage, "--all needs --older-than"},
		{[]string{"remove", "1001", "--older-than", "1d"}, exitUsage, "go with --all"},
		{[]string{"retry"}, exitUsage, "requires at least 1 arg"},
		{[]string{"show", "4242"}, exitFailure, "no job 4242"},
		{[]string{"show", "950.3"}, exitFailure, "batch job of 3 deliveries: name one as 950.0 to 950.2"},
		{[]string{"show", "950"}, exitFailure, "name one as 950.0 to 950.2"},
		{[]string{"show", "1001.0"}, exitFailure, "is an action job, not a batch job"},
		{[]string{"retry", "4242"}, exitFailure, "no job 4242"},
		{[]string{"remove", "950.7"}, exitFailure, "name one as 950.0 to 950.2"},
	} {
		args := append(tc.args, "--database-url", url)
		code, _, errOut := runDLQ(t, args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errOut)
		require.Contains(t, errOut, tc.msg, tc.args)
		require.Contains(t, errOut, "hint: ", tc.args)
	}
	code, _, errOut := runDLQ(t, "list", "--database-url", "postgres://127.0.0.1:1/x")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "hint: ")
}

func TestDLQRetrySkipsWhatIsNotDead(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)

	code, out, errOut := runDLQ(t, "retry", "1003", "1002", "--database-url", url)
	require.Equal(t, exitFailure, code, errOut)
	require.Equal(t, "skipped 1003: not dead: it is completed\nretried 1002\nretried 1 delivery, skipped 1, failed 0\n", out)
	var state string
	var attempt, maxAttempts, errs int
	var meta []byte
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT state::text, attempt, max_attempts, cardinality(errors), metadata
		FROM river_job WHERE id = 1002`).Scan(&state, &attempt, &maxAttempts, &errs, &meta))
	require.Equal(t, []any{"available", 0, 4, 4}, []any{state, attempt, maxAttempts, errs}, "fresh attempts, errors kept")
	require.Contains(t, string(meta), `"dlq_retries": [{"at":`)

	code, out, _ = runDLQ(t, "retry", "1002", "--database-url", url, "--format", "json")
	require.Equal(t, exitFailure, code, "retried twice: the second is skipped")
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.InDelta(t, 0, v["retried"], 0)
	require.InDelta(t, 1, v["skipped"], 0)
	require.Equal(t, "not dead: it is available", v["results"].([]any)[0].(map[string]any)["reason"])
}

func TestDLQBatchDeliveryRetriedAndRemovedAlone(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)

	code, out, errOut := runDLQ(t, "retry", "950.1", "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	res := v["results"].([]any)[0].(map[string]any)
	require.Equal(t, "retried", res["result"])
	job := int64(res["job_id"].(float64))
	var args obsriver.ActionArgs
	var state, queue string
	var maxAttempts int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT args, state::text, queue, max_attempts FROM river_job WHERE id = $1`, job).
		Scan(&args, &state, &queue, &maxAttempts))
	require.Equal(t, obsriver.ActionArgs{Seq: 104, EventID: "00000000-0000-4000-8000-000000000104", Entity: "Order",
		Observer: "order_webhook", Action: 0, ActionType: "webhook", ConfigVersion: 7, Batch: 950}, args)
	require.Equal(t, []any{"available", "fraiseql_observers_webhook", 4}, []any{state, queue, maxAttempts})

	code, out, _ = runDLQ(t, "retry", "950.1", "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "skipped 950.1: not dead: already retried as job")

	code, out, errOut = runDLQ(t, "remove", "950.0", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "removed 950.0\nremoved 1 delivery, skipped 0, failed 0\n", out)
	l := dlqList(t, url)
	require.EqualValues(t, 3, l.Total, "950.2, 1002 and 1001 are left")
	require.Equal(t, "950.2", l.Deliveries[0].ID)
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_deliveries WHERE batch_job_id IS NULL AND job_id = 950`).Scan(&n))
	require.Equal(t, 1, n, "the view shows only the batch's delivery still held by it")

	// The last delivery removed takes the batch job with it; the retried
	// one's job stays.
	code, _, errOut = runDLQ(t, "remove", "950.2", "1001", "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE id IN (950, 1001)`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE id = $1`, job).Scan(&n))
	require.Equal(t, 1, n)
	// 1001 continued completed batch job 900, which now marks its delivery
	// removed, so the view does not show it as the batch's.
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_deliveries WHERE seq = 101`).Scan(&n))
	require.Zero(t, n)
}

func TestDLQRemoveAllOlderThan(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	seedDLQ(t, pool)
	statusSeed(t, pool, `UPDATE river_job SET finalized_at = now() - interval '1 hour' WHERE id = 1002`)

	var errOut bytes.Buffer
	var out bytes.Buffer
	code := execute([]string{"dlq", "remove", "--all", "--older-than", "1d", "--database-url", url}, &out, &errOut)
	require.Equal(t, exitOK, code, errOut.String())
	require.Equal(t, "removed 4 deliveries, skipped 0, failed 0\n", out.String())
	require.True(t, strings.HasPrefix(errOut.String(), "removing: 4 of 4 (100%)"), errOut.String())
	l := dlqList(t, url)
	require.EqualValues(t, 1, l.Total)
	require.Equal(t, "1002", l.Deliveries[0].ID)
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE id IN (950, 1001)`).Scan(&n))
	require.Zero(t, n)
}
