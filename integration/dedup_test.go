package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// redisPrefix is a key prefix of its own for a test on the shared server.
func redisPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "fraiseql-observers-it:" + hex.EncodeToString(b[:]) + ":"
}

func dedupConfig(recvURL, storage string) string {
	return webhookConfig(storage, orderObserver(recvURL))
}

const seedOrder = `{"status":"new"}`

// The seed's check: the same change logged twice runs its actions once, and
// observer_dedup_skips_total is 1; on either backend.
func TestDedupSameChangeTwiceRunsOnce(t *testing.T) {
	t.Parallel()
	for name, storage := range map[string]string{
		"postgres": "dedup: {enabled: true, backend: postgres, window: 5m}\n",
		"redis": fmt.Sprintf("redis: {url: 'redis://127.0.0.1:6379/0', key_prefix: '%s'}\ndedup: {enabled: true, backend: redis, window: 5m}\n",
			redisPrefix()),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, url := sqltest.NewDB(t)
			recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
			p := observertest.StartProcess(t, runOptions(url, dedupConfig(recv.URL(), storage)))

			first := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
			second := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
			other := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-2", Kind: "INSERT", Data: seedOrder})
			got := recv.WaitN(t, 2, 30*time.Second)
			require.Eventually(t, func() bool {
				v, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_events_processed_total")
				return ok && v == 3
			}, 20*time.Second, 50*time.Millisecond, "all three changes are checkpointed")
			recv.Quiet(t, 500*time.Millisecond)
			require.Len(t, recv.All(), 2)
			ids := []string{entityID(t, got[0]), entityID(t, got[1])}
			require.ElementsMatch(t, []string{"order-1", "order-2"}, ids)
			require.Equal(t, map[int64]int{first: 1, other: 1}, jobCounts(t, pool), "no job for the duplicate %d", second)
			require.Equal(t, 1.0, observertest.Metric(t, p.HTTPAddr(), "observer_dedup_skips_total"))
		})
	}
}

// entityID returns the entity_id of the delivered envelope.
func entityID(t *testing.T, d observertest.Delivery) string {
	t.Helper()
	const k = `"entity_id":"`
	s := string(d.Body)
	i := strings.Index(s, k)
	require.GreaterOrEqual(t, i, 0, "no entity_id in %s", s)
	s = s[i+len(k):]
	return s[:strings.IndexByte(s, '"')]
}

// The process dies inside the enqueue transaction after the keys were
// written to Redis and before COMMIT. The claim must not count: after a
// restart the event is delivered (once), and only a later duplicate is
// skipped.
func TestDedupRedisCrashBeforeCommitLosesNothing(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := dedupConfig(recv.URL(), fmt.Sprintf(
		"redis: {url: 'redis://127.0.0.1:6379/0', key_prefix: '%s'}\ndedup: {backend: redis}\n", redisPrefix()))

	crashing := observertest.SpawnProcess(t, runOptions(url, cfg, "FRAISEQL_OBSERVERS_CRASH_IN_BATCH=1"))
	first := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
	select {
	case <-crashing.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not crash in its first batch\n%s", crashing.Log())
	}
	require.Contains(t, crashing.Log(), "fault injection: exiting inside enqueue transaction 1")
	require.Empty(t, recv.All())

	p := observertest.StartProcess(t, runOptions(url, cfg))
	d := recv.WaitN(t, 1, 30*time.Second)[0]
	require.Equal(t, "order-1", entityID(t, d), "the claim of the crashed batch does not count")
	second := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "order-1", Kind: "INSERT", Data: seedOrder})
	require.Eventually(t, func() bool {
		v, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_dedup_skips_total")
		return ok && v == 1
	}, 20*time.Second, 50*time.Millisecond, "the committed claim makes the next copy a duplicate")
	recv.Quiet(t, 300*time.Millisecond)
	require.Equal(t, map[int64]int{first: 1}, jobCounts(t, pool), "no job for %d", second)
}

// Redis dies mid-run. With on_error: process every event is still
// delivered and the failure is counted; with on_error: pause nothing is
// delivered while Redis is down and everything is once it is back.
func TestDedupRedisDownMidRun(t *testing.T) {
	t.Parallel()
	t.Run("process", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		pool, url := sqltest.NewDB(t)
		recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
		p := observertest.StartProcess(t, runOptions(url, dedupConfig(recv.URL(), fmt.Sprintf(
			"redis: {url: 'redis://%s/0'}\ndedup: {backend: redis, on_error: process}\n", mr.Addr()))))

		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "before", Kind: "INSERT", Data: seedOrder})
		recv.WaitN(t, 1, 30*time.Second)
		mr.Close()
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "during-1", Kind: "INSERT", Data: seedOrder})
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "during-2", Kind: "INSERT", Data: seedOrder})
		got := recv.WaitN(t, 2, 30*time.Second)
		require.ElementsMatch(t, []string{"during-1", "during-2"}, []string{entityID(t, got[0]), entityID(t, got[1])})
		require.GreaterOrEqual(t, observertest.Metric(t, p.HTTPAddr(), `observer_dedup_errors_total{backend="redis"}`), 1.0)
		require.Contains(t, p.Log(), "dedup backend failed; enqueueing the batch without deduplication")
	})
	t.Run("pause", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		pool, url := sqltest.NewDB(t)
		recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
		p := observertest.StartProcess(t, runOptions(url, dedupConfig(recv.URL(), fmt.Sprintf(
			"redis: {url: 'redis://%s/0'}\ndedup: {backend: redis, on_error: pause}\n", mr.Addr()))))

		mr.Close()
		pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "while-down", Kind: "INSERT", Data: seedOrder})
		require.Eventually(t, func() bool {
			v, ok := observertest.LookupMetric(t, p.HTTPAddr(), `observer_dedup_errors_total{backend="redis"}`)
			return ok && v >= 2
		}, 20*time.Second, 50*time.Millisecond, "the batch fails and is retried")
		require.Empty(t, recv.All(), "paused: nothing is enqueued while Redis is down")
		require.Empty(t, jobCounts(t, pool))

		require.NoError(t, mr.Restart())
		d := recv.WaitN(t, 1, 30*time.Second)[0]
		require.Equal(t, "while-down", entityID(t, d))
		require.Equal(t, map[int64]int{pk: 1}, jobCounts(t, pool))
	})
}
