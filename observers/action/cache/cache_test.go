package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	storeredis "github.com/fraiseql/fraiseql-observers/storage/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// testRedis returns a client on TEST_REDIS_URL (default the local server)
// and a random key prefix whose keys are deleted when the test ends; tests
// share the server and never flush it.
func testRedis(t *testing.T) (*goredis.Client, string) {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := goredis.ParseURL(url)
	require.NoError(t, err)
	rdb := goredis.NewClient(opt)
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err(), "a Redis server is needed at %s", url)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "fraiseql-observers-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		iter := rdb.Scan(ctx, 0, EscapeGlob(prefix)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func parseCacheAction(t *testing.T, prefix, pattern string) *Action {
	t.Helper()
	src := "redis: {url: 'redis://127.0.0.1:6379/0'}\nobservers:\n  o:\n    entity: Order\n    events: [INSERT, DELETE]\n" +
		"    actions:\n      - type: cache\n        key_pattern: '" + prefix + pattern + "'\n"
	cfg, _, err := observers.Parse("x.yaml", []byte(src))
	require.NoError(t, err)
	c := cfg.Observers[0].Actions[0].(*Action)
	require.Equal(t, ActionInvalidate, c.Action)
	return c
}

func keysUnder(t *testing.T, rdb *goredis.Client, prefix string) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), EscapeGlob(prefix)+"*").Result()
	require.NoError(t, err)
	return keys
}

func TestCacheActionInvalidatesAgainstRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := func(data map[string]any) *observers.Event {
		return &observers.Event{Kind: observers.KindInsert, EntityType: "Order", EntityID: "42", Data: data}
	}
	set := func(t *testing.T, rdb *goredis.Client, keys ...string) {
		for _, k := range keys {
			require.NoError(t, rdb.Set(ctx, k, "v", 0).Err())
		}
	}

	t.Run("exact key", func(t *testing.T) {
		t.Parallel()
		rdb, p := testRedis(t)
		set(t, rdb, p+"order:42", p+"order:42:lines", p+"order:420")
		c := parseCacheAction(t, p, "order:{{ id }}")
		pattern, err := c.Pattern(ev(map[string]any{"id": "42"}))
		require.NoError(t, err)
		n, err := storeredis.NewInvalidator(rdb).Invalidate(ctx, pattern)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.ElementsMatch(t, []string{p + "order:42:lines", p + "order:420"}, keysUnder(t, rdb, p))
	})

	t.Run("glob", func(t *testing.T) {
		t.Parallel()
		rdb, p := testRedis(t)
		set(t, rdb, p+"order:42:a", p+"order:42:b", p+"order:43:a")
		for i := range 1200 { // more than one SCAN page
			set(t, rdb, p+"order:42:many:"+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}))
		}
		c := parseCacheAction(t, p, "order:{{ event.entity_id }}:*")
		pattern, err := c.Pattern(ev(nil))
		require.NoError(t, err)
		n, err := storeredis.NewInvalidator(rdb).Invalidate(ctx, pattern)
		require.NoError(t, err)
		require.EqualValues(t, 1202, n)
		require.Equal(t, []string{p + "order:43:a"}, keysUnder(t, rdb, p))
	})

	t.Run("values are glob-escaped", func(t *testing.T) {
		t.Parallel()
		rdb, p := testRedis(t)
		set(t, rdb, p+"user:*", p+"user:alice", p+"user:a?c", p+"user:abc", p+`user:[ab]\x`, p+"user:a")
		c := parseCacheAction(t, p, "user:{{ name }}")
		for _, name := range []string{"*", "a?c", `[ab]\x`} {
			pattern, err := c.Pattern(ev(map[string]any{"name": name}))
			require.NoError(t, err)
			n, err := storeredis.NewInvalidator(rdb).Invalidate(ctx, pattern)
			require.NoError(t, err)
			require.EqualValues(t, 1, n, "only the key named %q", name)
		}
		require.ElementsMatch(t, []string{p + "user:alice", p + "user:abc", p + "user:a"}, keysUnder(t, rdb, p))

		// In a glob pattern the value stays literal too.
		set(t, rdb, p+"user:*:1", p+"user:bob:1")
		g := parseCacheAction(t, p, "user:{{ name }}:*")
		pattern, err := g.Pattern(ev(map[string]any{"name": "*"}))
		require.NoError(t, err)
		_, err = storeredis.NewInvalidator(rdb).Invalidate(ctx, pattern)
		require.NoError(t, err)
		require.Contains(t, keysUnder(t, rdb, p), p+"user:bob:1")
		require.NotContains(t, keysUnder(t, rdb, p), p+"user:*:1")
	})

	t.Run("a missing value is refused", func(t *testing.T) {
		t.Parallel()
		c := parseCacheAction(t, "", "{{ id }}*")
		_, err := c.Pattern(ev(map[string]any{"id": ""}))
		require.ErrorContains(t, err, "{{ id }} has no value")
		_, err = c.Pattern(ev(nil))
		require.Error(t, err)
	})

	t.Run("a DELETE renders from the before image", func(t *testing.T) {
		t.Parallel()
		c := parseCacheAction(t, "", "order:{{ id }}")
		pattern, err := c.Pattern(&observers.Event{Kind: observers.KindDelete, Before: map[string]any{"id": 7.0}})
		require.NoError(t, err)
		require.Equal(t, "order:7", pattern)
	})

	t.Run("redis errors are transient", func(t *testing.T) {
		t.Parallel()
		rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		env := &observers.Env{Invalidator: storeredis.NewInvalidator(rdb)}
		for _, pattern := range []string{"k", "k:*"} {
			a := parseCacheAction(t, "", pattern)
			err := a.Run(ctx, &observers.Delivery{Event: ev(nil), Observer: &observers.Observer{Name: "o"}, Env: env})
			var de *observers.DeliveryError
			require.True(t, errors.As(err, &de), "got %v", err)
			require.False(t, de.Permanent)
			require.ErrorContains(t, err, "redis")
		}
	})
}

func TestCacheActionConfigErrors(t *testing.T) {
	t.Parallel()
	obs := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n"
	for _, tc := range []struct{ name, src, want, hint string }{
		{"no redis.url", obs + "      - type: cache\n        key_pattern: 'a:{{ id }}'\n",
			"x.yaml:6:7: cache actions need redis.url", "redis:"},
		{"no key_pattern", "redis: {url: 'redis://h:6379/0'}\n" + obs + "      - type: cache\n",
			"x.yaml:7:7: observers.o.actions[0]: cache action needs key_pattern", "key_pattern:"},
		{"unknown action", "redis: {url: 'redis://h:6379/0'}\n" + obs + "      - type: cache\n        key_pattern: k\n        action: refresh\n",
			`x.yaml:9:17: unknown observers.o.actions[0].action "refresh"`, "invalidate"},
		{"bad template", "redis: {url: 'redis://h:6379/0'}\n" + obs + "      - type: cache\n        key_pattern: 'a:{{ id'\n",
			`x.yaml:8:22: invalid key_pattern: unclosed "{{" at offset 2`, "placeholders"},
		{"unknown key", "redis: {url: 'redis://h:6379/0'}\n" + obs + "      - type: cache\n        key: k\n",
			`x.yaml:8:9: unknown key "key" in observers.o.actions[0]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags, err := observers.Parse("x.yaml", []byte(tc.src))
			require.Error(t, err)
			var lines []string
			for _, d := range diags.Errors() {
				lines = append(lines, strings.SplitN(d.String(), "\n", 2)[0])
				if strings.SplitN(d.String(), "\n", 2)[0] == tc.want {
					require.Contains(t, d.Hint, tc.hint)
				}
			}
			require.Contains(t, lines, tc.want)
		})
	}
}
