package river

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// observer_job_queue_depth counts the available, retryable and scheduled
// jobs of each of the observer's queues (not running or finished ones, not
// other applications' queues), reports the queues the process works with 0,
// and reads the database once per QueueDepthCacheFor.
func TestQueueDepth(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insert := func(queue, state string, n int) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, scheduled_at, attempted_at, finalized_at)
			SELECT $1, '{}', $2, $3::river_job_state, 5, now() + interval '1 hour',
			       CASE WHEN $3 = 'running' THEN now() END, CASE WHEN $3 IN ('completed', 'cancelled', 'discarded') THEN now() END
			FROM generate_series(1, $4)`, ActionKind, queue, state, n)
		require.NoError(t, err)
	}
	webhook := QueueFor("webhook")
	insert(webhook, "available", 3)
	insert(webhook, "retryable", 2)
	insert(webhook, "scheduled", 4)
	insert(webhook, "running", 5)
	insert(webhook, "completed", 6)
	insert(webhook, "discarded", 1)
	insert(QueueName, "available", 1)
	insert("default", "available", 7)             // another application's queue
	insert("fraiseql_observersx", "available", 7) // not ours either

	qd := newQueueDepth(pool, func() []string { return []string{QueueName, webhook, QueueFor("email")} }, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(qd)
	want := map[string]float64{QueueName: 1, webhook: 9, QueueFor("email"): 0}
	require.Equal(t, want, gatherDepth(t, reg))

	insert(webhook, "available", 10)
	require.Equal(t, want, gatherDepth(t, reg), "within QueueDepthCacheFor the last reading is served")
	qd.mu.Lock()
	qd.readAt = time.Time{} // the cache expired
	qd.mu.Unlock()
	want[webhook] = 19
	require.Equal(t, want, gatherDepth(t, reg))

	running, err := RunningByQueue(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{webhook: 5}, running)
}

// A failed read reports no series rather than a false 0.
func TestQueueDepthReadFailureReportsNothing(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	qd := newQueueDepth(pool, func() []string { return []string{QueueName} }, nil)
	qd.timeout = time.Nanosecond
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(qd)
	require.Empty(t, gatherDepth(t, reg))
}

// gatherDepth scrapes reg (checking the exposition, as a pedantic
// registry does) and returns observer_job_queue_depth by queue.
func gatherDepth(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "observer_job_queue_depth" {
			continue
		}
		for _, m := range mf.GetMetric() {
			require.Len(t, m.GetLabel(), 1)
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}
