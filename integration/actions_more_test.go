package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// One event runs a cache invalidation (an exact key and a glob, in the real
// Redis) and indexes the entity's document in observer_search_documents; a
// DELETE of the entity removes the document.
func TestCacheAndSearchActionsEndToEnd(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()

	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	require.NoError(t, rdb.Ping(ctx).Err(), "a Redis server is needed at 127.0.0.1:6379")
	p := redisPrefix() + "app:"
	keys := func() []string {
		ks, err := rdb.Keys(ctx, p+"*").Result()
		require.NoError(t, err)
		return ks
	}
	t.Cleanup(func() {
		if ks, err := rdb.Keys(ctx, p+"*").Result(); err == nil && len(ks) > 0 {
			rdb.Del(ctx, ks...)
		}
		_ = rdb.Close()
	})
	for _, k := range []string{"order:42", "order:42:lines", "order:42:total", "order:43:lines", "order:420"} {
		require.NoError(t, rdb.Set(ctx, p+k, "cached", time.Hour).Err())
	}

	cfg := webhookConfig("redis: {url: 'redis://127.0.0.1:6379/0'}\n", map[string]string{"order_index": fmt.Sprintf(`entity: Order
events: [INSERT, UPDATE, DELETE]
actions:
  - type: cache
    key_pattern: "%[1]sorder:{{ id }}"
  - type: cache
    key_pattern: "%[1]sorder:{{ event.entity_id }}:*"
    action: invalidate
  - type: search
    index: orders
retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 200ms}
`, p)})
	proc := observertest.StartProcess(t, runOptions(url, cfg))

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "INSERT", Data: `{"id": "42", "total": 12.5, "note": "a \"quoted\" é"}`})

	// Cache: the exact key and the glob's matches are gone, nothing else.
	require.Eventually(t, func() bool { return len(keys()) == 2 }, 60*time.Second, 20*time.Millisecond)
	require.ElementsMatch(t, []string{p + "order:43:lines", p + "order:420"}, keys())

	// Search: the document holds the data and the event's metadata.
	docOf := func() (string, bool) {
		var doc string
		err := pool.QueryRow(ctx, `SELECT doc::text FROM observer_search_documents WHERE "index" = 'orders' AND entity_type = 'Order' AND entity_id = '42' AND doc IS NOT NULL`).Scan(&doc)
		return doc, err == nil
	}
	require.Eventually(t, func() bool { _, ok := docOf(); return ok }, 60*time.Second, 20*time.Millisecond)
	doc, _ := docOf()
	var eventID string
	require.NoError(t, pool.QueryRow(ctx, `SELECT id::text FROM core.tb_entity_change_log WHERE object_id = '42'`).Scan(&eventID))
	require.JSONEq(t, fmt.Sprintf(`{"entity_type": "Order", "entity_id": "42", "kind": "INSERT", "event_id": %q,
		"timestamp": %s, "data": {"id": "42", "total": 12.5, "note": "a \"quoted\" é"}}`, eventID, jsonField(t, doc, "timestamp")), doc)

	// A DELETE removes the document.
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "DELETE", Data: `{"id": "42"}`})
	require.Eventually(t, func() bool { _, ok := docOf(); return !ok }, 60*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return completedJobs(t, pool) == 6 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, proc.Stop(stopTimeout))
}

// jsonField returns the raw JSON of doc's top-level field name.
func jsonField(t *testing.T, doc, name string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(doc), &m))
	require.Contains(t, m, name)
	return string(m[name])
}
