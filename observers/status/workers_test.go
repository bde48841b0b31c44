package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/status"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Workers: per River queue, the jobs running (every listener group's) and
// the max workers summed over the instances whose heartbeat is fresh, of
// every listener group; a stale instance's queues and an older instance
// without queues count for nothing.
func TestStatusWorkersSumHealthyInstances(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedInstance(t, pool, "a", "orders", "leader", 0)
	seedInstance(t, pool, "b", "orders", "standby", time.Second)
	seedInstance(t, pool, "c", "billing", "leader", 0)
	seedInstance(t, pool, "stale", "orders", "standby", time.Minute)
	seedInstance(t, pool, "old-version", "orders", "standby", 0)
	statusExec(t, pool, `UPDATE observer_listeners SET queues = $2::jsonb WHERE id = ANY($1)`,
		[]string{"a", "b", "stale"}, `{"fraiseql_observers": 10, "fraiseql_observers_webhook": 100}`)
	statusExec(t, pool, `UPDATE observer_listeners SET queues = '{"fraiseql_observers_email": 20}' WHERE id = 'c'`)
	statusExec(t, pool, `INSERT INTO river_job (kind, args, queue, state, max_attempts, attempted_at)
		SELECT $1, '{}', q, 'running', 5, now() FROM unnest(ARRAY[$2, $2, $2, $3]) AS q`,
		obsriver.ActionKind, "fraiseql_observers_webhook", "fraiseql_observers_slack")
	statusExec(t, pool, `INSERT INTO river_job (kind, args, queue, state, max_attempts) VALUES ($1, '{}', $2, 'available', 5)`,
		obsriver.ActionKind, "fraiseql_observers_webhook")

	st := gather(t, pool, status.Params{ListenerID: "orders", RunningJobs: func(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
		return obsriver.RunningByQueue(ctx, tx)
	}})
	require.Equal(t, []status.QueueWorkers{
		{Queue: "fraiseql_observers", Running: 0, Limit: 20, Instances: 2},
		{Queue: "fraiseql_observers_email", Running: 0, Limit: 20, Instances: 1},
		{Queue: "fraiseql_observers_slack", Running: 1, Limit: 0, Instances: 0}, // no healthy instance works it
		{Queue: "fraiseql_observers_webhook", Running: 3, Limit: 200, Instances: 2},
	}, st.Workers)
}

// Without instances or jobs the list is empty, not null, in the JSON.
func TestStatusWorkersEmpty(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	st := gather(t, pool, status.Params{})
	require.NotNil(t, st.Workers)
	require.Empty(t, st.Workers)
}
