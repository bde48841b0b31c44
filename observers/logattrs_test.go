package observers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// A delivery's attributes reach every line logged with its context, once:
// a key the line (or the logger's With) already has is not repeated.
func TestLogHandlerAddsDeliveryAttrs(t *testing.T) {
	t.Parallel()
	cfg, _, err := observers.Parse("t.yaml", []byte("observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - {type: log}\n      - {type: webhook, url: 'https://example.com/h'}\n"))
	require.NoError(t, err)
	d := &observers.Delivery{Event: &observers.Event{ID: "ev-1", Seq: 7}, Observer: cfg.Observer("o"), Index: 1, Attempt: 3, JobID: 42}

	var buf bytes.Buffer
	logger := slog.New(observers.LogHandler(slog.NewJSONHandler(&buf, nil)))
	require.Same(t, logger.Handler(), observers.LogHandler(logger.Handler()), "wrapping twice is wrapping once")
	ctx := observers.WithDelivery(context.Background(), d)

	logger.InfoContext(ctx, "plain")
	logger.InfoContext(ctx, "own observer", slog.String("observer", "mine"))
	logger.With(slog.Int("attempt", 9)).InfoContext(ctx, "with attempt")
	logger.InfoContext(context.Background(), "no delivery")
	inner := *d
	inner.Event = &observers.Event{ID: "ev-2", Seq: 8}
	logger.InfoContext(observers.WithDelivery(ctx, &inner), "nested: the inner delivery")

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		require.LessOrEqual(t, strings.Count(l, `"observer"`), 1, "no key twice: %s", l)
		require.LessOrEqual(t, strings.Count(l, `"attempt"`), 1, "no key twice: %s", l)
		lines = append(lines, m)
	}
	require.Len(t, lines, 5)
	want := map[string]any{"event_id": "ev-1", "event_seq": 7.0, "observer": "o", "action_type": "webhook",
		"action_index": 1.0, "attempt": 3.0, "job_id": 42.0}
	for k, v := range want {
		require.Equal(t, v, lines[0][k], k)
	}
	require.Equal(t, "ev-2", lines[4]["event_id"])
	require.Equal(t, 8.0, lines[4]["event_seq"])
	require.Equal(t, "mine", lines[1]["observer"])
	require.Equal(t, "ev-1", lines[1]["event_id"])
	require.Equal(t, 9.0, lines[2]["attempt"])
	require.Equal(t, "ev-1", lines[2]["event_id"])
	require.NotContains(t, lines[3], "event_id")
}
