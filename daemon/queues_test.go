package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Every heartbeat records the River queues the process works with their
// max workers (status's Workers line sums them), including a queue a
// reload started.
func TestHeartbeatRecordsQueues(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	write := func(actions string) {
		require.NoError(t, os.WriteFile(cfg, []byte("concurrency: {max_parallelism: 7}\nobservers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: "+actions+"\n"), 0o600))
	}
	write("[{type: log}]")
	d, err := New(context.Background(), Options{ConfigPath: cfg, DatabaseURL: url, Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(d.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	queues := func() map[string]int {
		var raw []byte
		if err := pool.QueryRow(ctx, `SELECT queues FROM observer_listeners WHERE id = $1`, d.InstanceID()).Scan(&raw); err != nil || raw == nil {
			return nil
		}
		var q map[string]int
		require.NoError(t, json.Unmarshal(raw, &q))
		return q
	}
	require.Eventually(t, func() bool { return queues() != nil }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, map[string]int{"fraiseql_observers": 7, "fraiseql_observers_log": 7}, queues())

	write(`[{type: log}, {type: webhook, url: "https://example.com/x"}]`)
	d.reloader.reload(ctx, "test")
	require.Eventually(t, func() bool { return len(queues()) == 3 }, 30*time.Second, 50*time.Millisecond, "the next heartbeat has the new queue")
	require.Equal(t, map[string]int{"fraiseql_observers": 7, "fraiseql_observers_log": 7, "fraiseql_observers_webhook": 7}, queues())
}
