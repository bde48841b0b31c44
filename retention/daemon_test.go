package retention_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// A running observer deletes old rows while events flow: what the
// checkpoint passed and no unfinished delivery needs goes, rows of dead
// and retrying deliveries stay, and every event written meanwhile is
// delivered; the metric counts exactly what went.
func TestRetentionWhileEventsFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
			switch {
			case strings.Contains(string(d.Body), `"dead-`):
				return observertest.Response{Status: 400} // permanent: a dead letter
			case strings.Contains(string(d.Body), `"flaky-`):
				return observertest.Response{Status: 503} // retried in an hour
			}
			return observertest.Response{}
		},
	})

	const archived = 20_000
	// Old rows: nothing observes Archive; Order rows are delivered, or die,
	// or wait for their retry.
	exec(t, pool, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
		SELECT 'Archive', 'a-' || g, 'INSERT', '{}', now() - interval '3 days' FROM generate_series(1, $1::int) g`, archived)
	for _, prefix := range []string{"old", "dead", "flaky"} {
		exec(t, pool, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
			SELECT 'Order', $1 || '-' || g, 'INSERT', '{}', now() - interval '3 days' FROM generate_series(1, 5) g`, prefix)
	}
	exec(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		SELECT 'other_app_kind', '{}', 'completed', 1, now() - interval '3 days' FROM generate_series(1, 7)`)
	exec(t, pool, `INSERT INTO observer_skipped_events (listener_id, change_pk, reason, created_at)
		SELECT 'ret', g, 'bad json', now() - interval '40 days' FROM generate_series(1, 4) g`)

	ob := observertest.Run(t, observertest.Options{DatabaseURL: url, RetentionInterval: 200 * time.Millisecond, Config: fmt.Sprintf(`
listener: {id: ret, poll_interval: 50ms}
allow_private_targets: true
retention: {change_log: 1d, completed_jobs: 1d, dead_letters: 30d, skipped_events: 30d}
observers:
  orders:
    entity: Order
    events: [INSERT]
    retry: {max_attempts: 5, initial_delay: 1h, max_delay: 2h}
    actions:
      - type: webhook
        url: %s
        body_template: '{"id": "{{ event.entity_id }}"}'
`, recv.URL())})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, ob.WaitLeader(wctx))

	// Events written while retention runs: one transaction each.
	const live = 300
	for i := range live {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("live-", i), Kind: "INSERT", Data: "{}"})
	}
	got := recv.WaitN(t, live+5, 60*time.Second)
	seen := map[string]int{}
	for _, d := range got {
		seen[strings.TrimSuffix(strings.TrimPrefix(string(d.Body), `{"id": "`), `"}`)]++
	}
	for i := range live {
		require.Equal(t, 1, seen[fmt.Sprint("live-", i)], "live-%d delivered once", i)
	}

	metric := func(table string) float64 {
		v, _ := observertest.LookupMetric(t, ob.HTTPAddr(), `observer_retention_deleted_total{table="`+table+`"}`)
		return v
	}
	require.Eventually(t, func() bool {
		return remaining(t, pool, "a")+remaining(t, pool, "old") == 0 && metric("change_log") == archived+5
	}, 60*time.Second, 50*time.Millisecond, "old rows the checkpoint passed go, and are counted")
	require.Equal(t, int64(5), remaining(t, pool, "dead"), "a dead letter keeps its row (dlq retry needs it)")
	require.Equal(t, int64(5), remaining(t, pool, "flaky"), "a delivery waiting for its retry keeps its row")
	require.Equal(t, int64(live), remaining(t, pool, "live"), "young rows stay")
	require.Eventually(t, func() bool {
		return metric("completed_jobs") == 7 && metric("skipped_events") == 4
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, int64(0), count(t, pool, `SELECT count(*) FROM river_job WHERE kind = 'other_app_kind'`))
	require.Equal(t, int64(0), count(t, pool, `SELECT count(*) FROM observer_skipped_events`))
	require.Equal(t, int64(5), count(t, pool, `SELECT count(*) FROM observer_deliveries WHERE state = 'cancelled'`))
	require.InDelta(t, 0, metric("dead_letters"), 0)
	require.Equal(t, int64(1), count(t, pool, `SELECT count(*) FROM observer_checkpoints WHERE listener_id = 'ret'
		AND change_log = 'core.tb_entity_change_log'`), "the listener records the table it reads")
}
