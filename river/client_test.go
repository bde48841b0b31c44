package river

import (
	"context"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers/action/email"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	parse := func(src string) *observers.Config {
		cfg, _, err := observers.ParseWithEnv("q.yaml", []byte(src), func(string) (string, bool) { return "", false })
		require.NoError(t, err)
		return cfg
	}
	cfg := parse(`
observers:
  a:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url: "https://example.com/x"}
      - {type: log}
`)
	qs := Queues(cfg)
	require.Equal(t, river.QueueConfig{MaxWorkers: LegacyQueueMaxWorkers}, qs[QueueName], "the pre-upgrade queue is still worked")
	require.Equal(t, map[string]bool{QueueName: true, "fraiseql_observers_webhook": true, "fraiseql_observers_log": true},
		keys(qs), "a queue per action type in use, no idle producers for the rest")
	require.Equal(t, observers.WorkersMaxWorkersDefault, qs["fraiseql_observers_webhook"].MaxWorkers)

	cfg = parse(`
concurrency: {max_parallelism: 8, queues: {webhook: 3}}
observers:
  a:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url: "https://example.com/x"}
      - {type: slack, webhook_url: "https://example.com/s"}
`)
	qs = Queues(cfg)
	require.Equal(t, 3, qs["fraiseql_observers_webhook"].MaxWorkers)
	require.Equal(t, 8, qs["fraiseql_observers_slack"].MaxWorkers)
	require.Equal(t, 8, qs[QueueName].MaxWorkers)
	c := observers.ConcurrencyConfig{}.WithDefaults()
	require.Equal(t, email.MaxParallelismDefault, c.MaxWorkers(email.Name), "email: min(20, max_parallelism)")
}

func keys(m map[string]river.QueueConfig) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// A job left in the single pre-upgrade queue is worked after the upgrade,
// next to new jobs, which go to their action type's queue.
func TestClientWorksLegacyQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	cfg, _, err := observers.ParseWithEnv("test.yaml", []byte(`
concurrency:
  max_parallelism: 4
  queues: {log: 2}
observers:
  audit:
    entity: Order
    events: [INSERT]
    actions:
      - type: log
        message_template: "order {{ event.entity_id }}"
`), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	store := NewConfigStore(pool)
	v, err := store.Register(ctx, cfg)
	require.NoError(t, err)

	var seq int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO core.tb_entity_change_log
		(object_type, object_id, modification_type, object_data) VALUES ('Order', '1', 'INSERT', '{}')
		RETURNING pk_entity_change_log`).Scan(&seq))
	ev := &observers.Event{Seq: seq, ID: "legacy", EntityType: "Order"}

	client, err := NewClient(ClientParams{WorkerParams: WorkerParams{Pool: pool, Configs: store}, Config: cfg})
	require.NoError(t, err)
	// As an older version enqueued it: no queue but the single one.
	_, err = client.Insert(ctx, ActionArgs{Seq: seq, EventID: ev.ID, Entity: "Order", Observer: "audit",
		ActionType: "log", ConfigVersion: v.ID}, &river.InsertOpts{Queue: QueueName})
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, NewEnqueuer(EnqueuerParams{Client: client, DeliveriesPerJob: 1}).EnqueueTx(ctx, tx, []listener.Job{
		{Event: ev, Observer: cfg.Observer("audit"), ActionIndex: 0, ConfigVersion: v.ID},
	}))
	require.NoError(t, tx.Commit(ctx))

	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) })

	completed := func() map[string]string {
		rows, err := pool.Query(ctx, `SELECT queue, state::text FROM river_job`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var q, s string
			require.NoError(t, rows.Scan(&q, &s))
			out[q] = s
		}
		require.NoError(t, rows.Err())
		return out
	}
	want := map[string]string{QueueName: "completed", "fraiseql_observers_log": "completed"}
	require.Eventually(t, func() bool {
		got := completed()
		return got[QueueName] == "completed" && got["fraiseql_observers_log"] == "completed"
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, want, completed())
}
