package resultcache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

func TestResultCacheKey(t *testing.T) {
	t.Parallel()
	wa := &observers.WebhookAction{URL: "https://example.com/hook", Headers: map[string]string{"X-Tenant": "acme"}}
	o := &observers.Observer{Name: "orders", Actions: []observers.Action{{Type: "webhook", Webhook: wa}}}
	on := &Version{Config: &observers.Config{Cache: observers.CacheConfig{Enabled: true, TTL: time.Minute}}}
	off := &Version{Config: &observers.Config{}}
	rc := newResultCache(&memCache{}, nil)
	ev := func(id string, at time.Time, data string) *observers.Event {
		return &observers.Event{ID: id, Kind: observers.KindInsert, EntityType: "Order", EntityID: "order-1", RawData: []byte(data), Data: map[string]any{}, CreatedAt: at}
	}
	a := ev("a", time.Unix(1, 0), `{"status":"new"}`)
	b := ev("b", time.Unix(2, 0), `{"status":"new"}`)
	c := ev("c", time.Unix(3, 0), `{"status":"paid"}`)

	ka := rc.webhookKey(on, o, 0, a, wa.URL, []byte("envelope a"))
	require.Regexp(t, `^action:webhook:Order:order-1:[0-9a-f]{64}$`, ka)
	require.Equal(t, ka, rc.webhookKey(on, o, 0, b, wa.URL, []byte("envelope b")), "the event's id and timestamp do not count")
	require.NotEqual(t, ka, rc.webhookKey(on, o, 0, c, wa.URL, nil), "the data counts")
	require.NotEqual(t, ka, rc.webhookKey(on, o, 0, a, wa.URL+"?x=1", nil), "the URL counts")
	require.Empty(t, rc.webhookKey(off, o, 0, a, wa.URL, nil), "no cache: block")
	require.Empty(t, (*resultCache)(nil).webhookKey(on, o, 0, a, wa.URL, nil), "no store")

	// Headers: user headers count; the per-attempt ones the client sets do not.
	k := resultKey("webhook", a, "orders", "POST", wa.URL, map[string]string{"X-Tenant": "acme"}, []byte("{}"))
	require.Equal(t, k, resultKey("webhook", a, "orders", "post", wa.URL, map[string]string{"x-tenant": "acme", "webhook-signature": "v1,x", "Webhook-Timestamp": "1"}, []byte("{}")))
	require.NotEqual(t, k, resultKey("webhook", a, "orders", "POST", wa.URL, map[string]string{"X-Tenant": "other"}, []byte("{}")))
	require.NotEqual(t, k, resultKey("webhook", a, "other", "POST", wa.URL, map[string]string{"X-Tenant": "acme"}, []byte("{}")), "the observer counts")
	require.Contains(t, rc.slackKey(on, o, a, "https://hooks.slack.com/x", []byte(`{"text":"hi"}`)), "action:slack:Order:order-1:")
}

// memCache is a storage.Cache in memory, without expiry.
type memCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *memCache) Get(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}

func (c *memCache) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	c.m[key] = value
	return nil
}

func (c *memCache) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	panic("not used")
}
func (c *memCache) Delete(context.Context, ...string) error { panic("not used") }
func (c *memCache) Backend() string                         { return "memory" }

// Identical requests in flight at once wait for the first: it misses and
// sends; once it has saved, the other is a hit.
func TestResultCacheLookupWaitsForInflight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := newResultCache(&memCache{}, nil)
	v := &Version{Config: &observers.Config{Cache: observers.CacheConfig{Enabled: true, TTL: time.Minute}}}
	hit, release := rc.lookup(ctx, "k")
	require.False(t, hit)

	second := make(chan bool)
	go func() {
		hit, release := rc.lookup(ctx, "k")
		release()
		second <- hit
	}()
	select {
	case <-second:
		t.Fatal("the second lookup must wait for the first sender")
	case <-time.After(50 * time.Millisecond):
	}
	rc.save(ctx, v, "k", 200)
	release()
	require.True(t, <-second)

	// A failed send (nothing saved) lets the next one send.
	hit, release = rc.lookup(ctx, "other")
	require.False(t, hit)
	release()
	hit, release = rc.lookup(ctx, "other")
	require.False(t, hit)
	release()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	hit, release = rc.lookup(cctx, "")
	require.False(t, hit, "cache off")
	release()
}
