package observers

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDedupKeyIsContentBased(t *testing.T) {
	t.Parallel()
	ev := func(typ, id string, kind Kind, data string) *Event {
		return &Event{EntityType: typ, EntityID: id, Kind: kind, RawData: []byte(data)}
	}
	base := DedupKey(ev("Order", "order-1", KindInsert, `{"status":"new","total":12.50,"a":{"y":1,"x":[2,1]}}`))
	require.Len(t, base, 64)

	same := ev("Order", "order-1", KindInsert, ` { "a": {"x": [2, 1], "y": 1}, "total": 12.50, "status": "new" } `)
	same.Seq, same.ID, same.TxID, same.CreatedAt = 99, "another-uuid", 12345, time.Now()
	require.Equal(t, base, DedupKey(same), "key order, spacing, pk, id, txid and time do not matter")

	for name, other := range map[string]*Event{
		"entity type": ev("Invoice", "order-1", KindInsert, `{"status":"new","total":12.50,"a":{"y":1,"x":[2,1]}}`),
		"entity id":   ev("Order", "order-2", KindInsert, `{"status":"new","total":12.50,"a":{"y":1,"x":[2,1]}}`),
		"kind":        ev("Order", "order-1", KindUpdate, `{"status":"new","total":12.50,"a":{"y":1,"x":[2,1]}}`),
		"data":        ev("Order", "order-1", KindInsert, `{"status":"paid","total":12.50,"a":{"y":1,"x":[2,1]}}`),
		"array order": ev("Order", "order-1", KindInsert, `{"status":"new","total":12.50,"a":{"y":1,"x":[1,2]}}`),
		"number text": ev("Order", "order-1", KindInsert, `{"status":"new","total":12.5,"a":{"y":1,"x":[2,1]}}`),
	} {
		require.NotEqual(t, base, DedupKey(other), name)
	}
	// Fields cannot run into each other.
	require.NotEqual(t, DedupKey(ev("ab", "c", KindInsert, `{}`)), DedupKey(ev("a", "bc", KindInsert, `{}`)))
	// Big integers are kept exactly.
	require.NotEqual(t, DedupKey(ev("O", "1", KindInsert, `{"n":9007199254740993}`)),
		DedupKey(ev("O", "1", KindInsert, `{"n":9007199254740992}`)))
	require.Equal(t, `{"a":"<&>","b":1}`, string(canonicalJSON([]byte(`{"b":1,"a":"<\u0026>"}`))))
}

func TestConfigStorageBlocks(t *testing.T) {
	t.Parallel()
	const observersYAML = "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: webhook\n        url: https://example.com/x\n"

	cfg, diags, err := Parse("none.yaml", []byte(observersYAML))
	require.NoError(t, err)
	require.Empty(t, diags)
	require.False(t, cfg.Dedup.Enabled, "no dedup: block, no dedup")
	require.Equal(t, DedupConfig{Backend: BackendPostgres, Window: 5 * time.Minute, OnError: DedupOnErrorProcess}, cfg.Dedup)
	require.Equal(t, CacheConfig{Backend: BackendPostgres, TTL: 5 * time.Minute}, cfg.Cache)

	cfg, diags, err = Parse("on.yaml", []byte("dedup: {}\n"+observersYAML))
	require.NoError(t, err)
	require.Empty(t, diags)
	require.Equal(t, DedupConfig{Enabled: true, Backend: BackendPostgres, Window: 5 * time.Minute, OnError: DedupOnErrorProcess}, cfg.Dedup)

	cfg, diags, err = Parse("redis.yaml", []byte(`redis: {url: "redis://127.0.0.1:6379/0"}
dedup: {enabled: true, backend: redis, window: 30s, on_error: pause}
cache: {backend: Redis, ttl: 1m}
`+observersYAML))
	require.NoError(t, err)
	require.Empty(t, diags)
	require.Equal(t, RedisConfig{URL: "redis://127.0.0.1:6379/0", KeyPrefix: RedisKeyPrefixDefault}, cfg.Redis)
	require.Equal(t, DedupConfig{Enabled: true, Backend: BackendRedis, Window: 30 * time.Second, OnError: DedupOnErrorPause}, cfg.Dedup)
	require.Equal(t, CacheConfig{Enabled: true, Backend: BackendRedis, TTL: time.Minute}, cfg.Cache)

	_, diags, err = Parse("off.yaml", []byte("dedup: {enabled: false, backend: redis}\n"+observersYAML))
	require.NoError(t, err, "a disabled redis dedup needs no redis.url")
	require.Empty(t, diags)
}

func TestConfigStorageErrors(t *testing.T) {
	t.Parallel()
	const observersYAML = "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: webhook\n        url: https://example.com/x\n"
	for name, tc := range map[string]struct{ yaml, want string }{
		"redis without url":  {"dedup: {backend: redis}\n", "bad.yaml:1:18: dedup.backend is redis but redis.url is not set"},
		"cache without url":  {"cache:\n  backend: redis\n", "bad.yaml:2:12: cache.backend is redis but redis.url is not set"},
		"unknown backend":    {"dedup: {backend: memcached}\n", `unknown dedup.backend "memcached"`},
		"unknown on_error":   {"dedup: {on_error: ignore}\n", `unknown dedup.on_error "ignore"`},
		"bad window":         {"dedup: {window: 5}\n", "dedup.window: 5 has no unit"},
		"bad url":            {"redis: {url: 'http://x'}\n", "redis.url is not a Redis URL"},
		"unknown dedup key":  {"dedup: {windw: 5m}\n", `windw`},
		"unknown redis key":  {"redis: {host: x}\n", `host`},
		"enabled not a bool": {"dedup: {enabled: yes please}\n", "dedup.enabled must be true or false"},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags, err := Parse("bad.yaml", []byte(tc.yaml+observersYAML))
			require.Error(t, err)
			var all []string
			for _, d := range diags.Errors() {
				all = append(all, d.String())
			}
			require.Contains(t, strings.Join(all, "\n"), tc.want)
		})
	}
}
