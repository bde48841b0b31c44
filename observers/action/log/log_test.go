package log

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/stretchr/testify/require"
)

func TestActionWritesOneStructuredLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ev := &observers.Event{Seq: 17, ID: "e-1", Kind: observers.KindUpdate, EntityType: "Order", EntityID: "42",
		Data: map[string]any{"status": "shipped", "note": "a \"quoted\"\nline"}}

	a := &Action{Level: LevelWarn, MessageTemplate: "order {{ event.entity_id }} is {{ status }}: {{ note }}"}
	a.Write(context.Background(), logger, "order_shipped", ev)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1, "one line, whatever the message holds")
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	delete(got, "time")
	require.Equal(t, map[string]any{
		"level":       "WARN",
		"msg":         "order 42 is shipped: a \"quoted\"\nline",
		"action_type": "log",
		"observer":    "order_shipped",
		"event_seq":   17.0,
		"event_id":    "e-1",
		"entity":      "Order",
		"entity_id":   "42",
		"kind":        "UPDATE",
	}, got)
}

func TestActionLevelsAndDefault(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ev := &observers.Event{Seq: 1, Kind: observers.KindInsert, EntityType: "Order", EntityID: "7", Data: map[string]any{}}

	(&Action{Level: LevelDebug}).Write(context.Background(), logger, "o", ev)
	require.Empty(t, buf.String(), "debug is below the handler's level")

	(&Action{}).Write(context.Background(), logger, "o", ev)
	require.Contains(t, buf.String(), `level=INFO msg="Order 7 INSERT"`)

	for lvl, want := range map[string]slog.Level{
		LevelDebug: slog.LevelDebug, LevelInfo: slog.LevelInfo, LevelWarn: slog.LevelWarn,
		LevelError: slog.LevelError, "": slog.LevelInfo,
	} {
		require.Equal(t, want, (&Action{Level: lvl}).SlogLevel(), lvl)
	}
}
