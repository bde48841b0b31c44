package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// The database-wide gauges (queue depth, DLQ size, listener lag, healthy
// listeners) are refreshed and exported by the listener leader only; the
// standby exports none of them, and takes them over when it leads. The
// lag gauge shows the age of a change the leader cannot enqueue, and
// falls back to 0 once it can.
func TestDatabaseGaugesOnTheLeaderOnly(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("listener: {poll_interval: 100ms}\nobservers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	var block atomic.Bool
	start := func() (*daemon.Daemon, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		d, err := daemon.New(context.Background(), daemon.Options{
			ConfigPath: cfg, DatabaseURL: url, Registry: reg, GaugeInterval: 50 * time.Millisecond,
			StandbyRetry: 50 * time.Millisecond, DrainTimeout: 5 * time.Second,
			BeforeCommit: func(context.Context, int) error {
				if block.Load() {
					return errors.New("test: enqueue blocked")
				}
				return nil
			},
		})
		require.NoError(t, err)
		require.NoError(t, d.Start(context.Background()))
		t.Cleanup(d.Stop)
		return d, reg
	}
	a, regA := start()
	require.Eventually(t, a.Leading, 30*time.Second, 10*time.Millisecond)
	b, regB := start()

	dbGauges := []string{"observer_job_queue_depth", "observer_dlq_size", "observer_listener_lag_seconds", "observer_listeners_healthy",
		"observer_audit_outbox_size"}
	require.Eventually(t, func() bool {
		v, ok := gauge(t, regA, "observer_listeners_healthy")
		return ok && v == 2
	}, 30*time.Second, 10*time.Millisecond, "the leader counts both instances")
	for _, name := range dbGauges {
		_, ok := gauge(t, regA, name)
		require.True(t, ok, "the leader exports %s", name)
		_, ok = gauge(t, regB, name)
		require.False(t, ok, "the standby does not export %s", name)
	}
	requireGauge(t, regA, "observer_is_leader", 1)
	requireGauge(t, regA, "observer_listener_is_leader", 1)
	requireGauge(t, regB, "observer_is_leader", 0)
	requireGauge(t, regA, "observer_listener_lag_seconds", 0)
	requireGauge(t, regA, "observer_dlq_size", 0)
	requireGauge(t, regA, "observer_audit_outbox_size", 0)

	// A change the leader cannot enqueue, committed an hour ago.
	block.Store(true)
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "A", ID: "1", Kind: "INSERT", Data: `{}`})
	_, err := pool.Exec(context.Background(), `UPDATE `+observertest.ChangeLogTable+` SET created_at = now() - interval '1 hour' WHERE pk_entity_change_log = $1`, pk)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v, _ := gauge(t, regA, "observer_listener_lag_seconds")
		return v >= 3600
	}, 30*time.Second, 10*time.Millisecond, "the lag is the age of the change not enqueued")
	block.Store(false)
	require.Eventually(t, func() bool {
		v, ok := gauge(t, regA, "observer_listener_lag_seconds")
		return ok && v == 0
	}, 30*time.Second, 10*time.Millisecond, "caught up")

	// The leader stops: the standby leads and reports the gauges.
	a.Stop()
	require.Eventually(t, b.Leading, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		v, ok := gauge(t, regB, "observer_listeners_healthy")
		return ok && v == 1
	}, 30*time.Second, 10*time.Millisecond, "the new leader reports the gauges")
	requireGauge(t, regB, "observer_is_leader", 1)
}

// gauge reads the single series of a label-less gauge, or the sum of a
// labelled one; ok is false when reg exports none.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v, ok = v+m.GetGauge().GetValue(), true
		}
	}
	return v, ok
}

func requireGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	v, ok := gauge(t, reg, name)
	require.True(t, ok, "%s is exported", name)
	require.Equal(t, want, v, name)
}
