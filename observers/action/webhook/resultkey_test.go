package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// keyRecorder is a ResultCache that records the keys Run looks up and
// reports every one as a hit, so nothing is sent.
type keyRecorder struct{ keys []string }

func (r *keyRecorder) Lookup(_ context.Context, key string) (bool, func()) {
	r.keys = append(r.keys, key)
	return true, func() {}
}
func (r *keyRecorder) Save(context.Context, string, int, time.Duration) {}

func TestResultCacheKey(t *testing.T) {
	t.Parallel()
	wa := &Action{URL: "https://example.com/hook", Headers: map[string]string{"X-Tenant": "acme"}}
	o := &observers.Observer{Name: "orders", Actions: []observers.Action{wa}}
	on := &observers.Config{Cache: observers.CacheConfig{Enabled: true, TTL: time.Minute}}
	ev := func(id string, at time.Time, data string) *observers.Event {
		return &observers.Event{ID: id, Kind: observers.KindInsert, EntityType: "Order", EntityID: "order-1",
			RawData: []byte(data), Data: map[string]any{}, CreatedAt: at}
	}
	key := func(a *Action, cfg *observers.Config, e *observers.Event) string {
		rec := &keyRecorder{}
		err := a.Run(context.Background(), &observers.Delivery{Event: e, Observer: o, Config: cfg, Env: &observers.Env{Results: rec}})
		if len(rec.keys) == 0 {
			require.Error(t, err, "no HTTP client: it would have sent")
			return ""
		}
		require.ErrorIs(t, err, observers.ErrCached)
		return rec.keys[0]
	}
	a := ev("a", time.Unix(1, 0), `{"status":"new"}`)
	b := ev("b", time.Unix(2, 0), `{"status":"new"}`)
	c := ev("c", time.Unix(3, 0), `{"status":"paid"}`)

	ka := key(wa, on, a)
	require.Regexp(t, `^action:webhook:Order:order-1:[0-9a-f]{64}$`, ka)
	require.Equal(t, ka, key(wa, on, b), "the event's id and timestamp do not count")
	require.NotEqual(t, ka, key(wa, on, c), "the data counts")
	require.NotEqual(t, ka, key(&Action{URL: wa.URL + "?x=1", Headers: wa.Headers}, on, a), "the URL counts")
	require.Empty(t, key(wa, &observers.Config{}, a), "no cache: block, no lookup")

	// Headers: user headers count; the per-attempt ones the client sets do not.
	k := ResultKey("webhook", a, "orders", "POST", wa.URL, map[string]string{"X-Tenant": "acme"}, []byte("{}"))
	require.Equal(t, k, ResultKey("webhook", a, "orders", "post", wa.URL, map[string]string{"x-tenant": "acme", "webhook-signature": "v1,x", "Webhook-Timestamp": "1"}, []byte("{}")))
	require.NotEqual(t, k, ResultKey("webhook", a, "orders", "POST", wa.URL, map[string]string{"X-Tenant": "other"}, []byte("{}")))
	require.NotEqual(t, k, ResultKey("webhook", a, "other", "POST", wa.URL, map[string]string{"X-Tenant": "acme"}, []byte("{}")), "the observer counts")
	require.Contains(t, ResultKey("slack", a, "orders", "POST", "https://hooks.slack.com/x", nil, []byte(`{"text":"hi"}`)), "action:slack:Order:order-1:")
}

func TestBodyTemplate(t *testing.T) {
	t.Parallel()
	w := &Action{BodyTemplate: `{"id": "{{ id }}"}`}
	require.NotNil(t, w.Body(), "hand-built action compiles on demand")
	body, err := w.Body().Render(map[string]any{"id": "x"}, true)
	require.NoError(t, err)
	require.Equal(t, `{"id": "x"}`, body)
	require.Nil(t, (&Action{}).Body())
}
