package river

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// observer_job_queue_depth counts the jobs of each of the observer's queues
// by state (available, scheduled, retryable, running; not finished ones,
// not other applications' queues), reports the queues the process works
// with 0 in every state; observer_dlq_size counts the dead deliveries as
// `dlq` does. Refresh reads them again; Clear removes every series.
func TestGauges(t *testing.T) {
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
	webhook, email := QueueFor("webhook"), QueueFor("email")
	insert(webhook, "available", 3)
	insert(webhook, "retryable", 2)
	insert(webhook, "scheduled", 4)
	insert(webhook, "running", 5)
	insert(webhook, "completed", 6)
	insert(webhook, "discarded", 1)
	insert(webhook, "cancelled", 2)
	insert(QueueName, "available", 1)
	insert("default", "available", 7)             // another application's queue
	insert("fraiseql_observersx", "available", 7) // not ours either

	reg := prometheus.NewPedanticRegistry()
	g := NewGauges(reg, func() []string { return []string{QueueName, webhook, email} })
	require.Empty(t, gatherGauges(t, reg), "nothing before the first refresh")
	require.NoError(t, g.Refresh(ctx, pool))
	want := map[string]float64{
		"dlq":                    3,
		QueueName + "/available": 1, QueueName + "/scheduled": 0, QueueName + "/retryable": 0, QueueName + "/running": 0,
		webhook + "/available": 3, webhook + "/scheduled": 4, webhook + "/retryable": 2, webhook + "/running": 5,
		email + "/available": 0, email + "/scheduled": 0, email + "/retryable": 0, email + "/running": 0,
	}
	require.Equal(t, want, gatherGauges(t, reg))

	insert(webhook, "available", 10)
	insert(webhook, "discarded", 1)
	require.Equal(t, want, gatherGauges(t, reg), "a scrape does not read the database")
	require.NoError(t, g.Refresh(ctx, pool))
	want[webhook+"/available"], want["dlq"] = 13, 4
	require.Equal(t, want, gatherGauges(t, reg))

	g.Clear()
	require.Empty(t, gatherGauges(t, reg), "an instance that does not refresh them exports none")
}

// A failed read removes the series rather than leaving a stale value.
func TestGaugesReadFailureReportsNothing(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	reg := prometheus.NewPedanticRegistry()
	g := NewGauges(reg, func() []string { return []string{QueueName} })
	require.NoError(t, g.Refresh(context.Background(), pool))
	require.NotEmpty(t, gatherGauges(t, reg))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, g.Refresh(ctx, pool))
	require.Empty(t, gatherGauges(t, reg))
}

// gatherGauges scrapes reg (checking the exposition, as a pedantic
// registry does) and returns observer_job_queue_depth by "queue/state" and
// observer_dlq_size as "dlq".
func gatherGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "observer_job_queue_depth":
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				require.Len(t, l, 2)
				out[l["queue"]+"/"+l["state"]] = m.GetGauge().GetValue()
			case "observer_dlq_size":
				require.Empty(t, m.GetLabel())
				out["dlq"] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
