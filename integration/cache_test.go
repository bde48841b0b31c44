package integration

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// cacheBackends are the cache: blocks under test, with ttl.
func cacheBackends(ttl string) map[string]string {
	return map[string]string{
		"postgres": fmt.Sprintf("cache: {backend: postgres, ttl: %s}\n", ttl),
		"redis": fmt.Sprintf("redis: {url: 'redis://127.0.0.1:6379/0', key_prefix: '%s'}\ncache: {backend: redis, ttl: %s}\n",
			redisPrefix(), ttl),
	}
}

// completedJobs counts River jobs that finished successfully.
func completedJobs(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_deliveries WHERE state = 'completed'`).Scan(&n))
	return n
}

// The same change logged twice (two events, same entity and data) sends one
// request: the second job is served from the result cache and completes. Two
// identical changes in one transaction (worked at once) also send one.
func TestCacheSameChangeTwiceSendsOnce(t *testing.T) {
	t.Parallel()
	for name, storage := range cacheBackends("5m") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, url := sqltest.NewDB(t)
			recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
			p := observertest.StartProcess(t, runOptions(url, webhookConfig(storage, orderObserver(recv.URL()))))

			observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
			recv.WaitN(t, 1, 30*time.Second)
			observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
			require.Eventually(t, func() bool { return completedJobs(t, pool) == 2 }, 20*time.Second, 50*time.Millisecond)
			require.Equal(t, 1.0, observertest.Metric(t, p.HTTPAddr(), "observer_cache_hits_total"))
			require.Len(t, recv.All(), 1, "the identical request is not sent again")

			// Different data is a different request.
			observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: `{"status":"paid"}`})
			recv.WaitN(t, 1, 30*time.Second)

			// A burst: two identical changes in one transaction.
			_, err := pool.Exec(context.Background(), `INSERT INTO core.tb_entity_change_log
				(object_type, object_id, modification_type, object_data)
				VALUES ('Order', 'order-2', 'INSERT', '{"status":"new"}'), ('Order', 'order-2', 'INSERT', '{"status":"new"}')`)
			require.NoError(t, err)
			recv.WaitN(t, 1, 30*time.Second)
			require.Eventually(t, func() bool { return completedJobs(t, pool) == 5 }, 20*time.Second, 50*time.Millisecond)
			recv.Quiet(t, 300*time.Millisecond)
			require.Len(t, recv.All(), 3)
			require.Equal(t, 2.0, observertest.Metric(t, p.HTTPAddr(), "observer_cache_hits_total"))
			require.Equal(t, 3.0, observertest.Metric(t, p.HTTPAddr(), "observer_cache_misses_total"))
			require.InDelta(t, 0.4, observertest.Metric(t, p.HTTPAddr(), "observer_cache_hit_rate"), 1e-9)
			// The labelled error counter appears with the first error
			// (TestCacheBackendDownStillDelivers reads it): none here.
			_, counted := observertest.LookupMetric(t, p.HTTPAddr(), fmt.Sprintf("observer_cache_errors_total{backend=%q}", name))
			require.False(t, counted, "no cache error was counted")
			require.Equal(t, 3.0, observertest.Metric(t, p.HTTPAddr(), `observer_actions_executed_total{action_type="webhook",observer="order_created"}`),
				"a cache hit is not an executed action")
		})
	}
}

// After cache.ttl the identical request is sent again.
func TestCacheExpirySendsAgain(t *testing.T) {
	t.Parallel()
	for name, storage := range cacheBackends("1s") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, url := sqltest.NewDB(t)
			recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
			p := observertest.StartProcess(t, runOptions(url, webhookConfig(storage, orderObserver(recv.URL()))))

			observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
			recv.WaitN(t, 1, 30*time.Second)
			require.Eventually(t, func() bool {
				observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
				return len(recv.All()) >= 2
			}, 20*time.Second, 400*time.Millisecond, "a copy after the TTL is sent")
			require.GreaterOrEqual(t, observertest.Metric(t, p.HTTPAddr(), "observer_cache_misses_total"), 2.0)
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// A cache backend that fails never holds back a delivery: every change is
// sent and the failures are counted per backend.
func TestCacheBackendDownStillDelivers(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		pool, url := sqltest.NewDB(t)
		recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
		p := observertest.StartProcess(t, runOptions(url, webhookConfig(fmt.Sprintf(
			"redis: {url: 'redis://%s/0'}\ncache: {backend: redis}\n", closedAddr(t)), orderObserver(recv.URL()))))

		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
		recv.WaitN(t, 1, 30*time.Second)
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
		recv.WaitN(t, 1, 30*time.Second)
		require.Eventually(t, func() bool { return completedJobs(t, pool) == 2 }, 20*time.Second, 50*time.Millisecond)
		require.GreaterOrEqual(t, observertest.Metric(t, p.HTTPAddr(), `observer_cache_errors_total{backend="redis"}`), 4.0, "a read and a write per delivery")
		require.Zero(t, observertest.Metric(t, p.HTTPAddr(), "observer_cache_hits_total"))
		require.Contains(t, p.Log(), "worker: result cache read failed; sending the request")
	})
	t.Run("killed mid-run", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		pool, url := sqltest.NewDB(t)
		recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
		p := observertest.StartProcess(t, runOptions(url, webhookConfig(fmt.Sprintf(
			"redis: {url: 'redis://%s/0'}\ncache: {backend: redis}\n", mr.Addr()), orderObserver(recv.URL()))))

		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
		recv.WaitN(t, 1, 30*time.Second)
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
		require.Eventually(t, func() bool {
			v, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_cache_hits_total")
			return ok && v == 1
		}, 20*time.Second, 50*time.Millisecond, "served from the cache while Redis is up")

		mr.Close()
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
		recv.WaitN(t, 1, 30*time.Second)
		require.Eventually(t, func() bool { return completedJobs(t, pool) == 3 }, 20*time.Second, 50*time.Millisecond)
		require.Len(t, recv.All(), 2)
		require.GreaterOrEqual(t, observertest.Metric(t, p.HTTPAddr(), `observer_cache_errors_total{backend="redis"}`), 1.0)
	})
}

// Without a cache: block nothing is cached: the same change twice is sent
// twice and the cache metrics stay at zero.
func TestCacheOffWithoutBlock(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL()))))

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
	recv.WaitN(t, 1, 30*time.Second)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
	recv.WaitN(t, 1, 30*time.Second)
	require.Zero(t, observertest.Metric(t, p.HTTPAddr(), "observer_cache_hits_total"))
	require.Zero(t, observertest.Metric(t, p.HTTPAddr(), "observer_cache_misses_total"))
}
