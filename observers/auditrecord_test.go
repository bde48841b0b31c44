package observers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// An event record carries the event's stored data (the same bytes, not
// encoded again) and its created_at to the millisecond; an unknown kind
// keeps its spelling; errors lose NUL bytes and are bounded.
func TestAuditRecords(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 10, 0, 0, 123_456_789, time.FixedZone("x", 3600))
	ev := &observers.Event{Seq: 9, ID: "ev-9", RawKind: "merged", EntityType: "Order", EntityID: "o-9", CreatedAt: created,
		RawData: []byte(`{"total": 42}`)}
	r := observers.EventRecord(ev, storage.AuditSkipped, "unknown modification_type \"merged\"\x00")
	require.Equal(t, storage.AuditRecord{ID: "9:skipped", EventID: "ev-9", EventSeq: 9, EntityType: "Order", EntityID: "o-9",
		EventKind: "merged", Timestamp: time.Date(2026, 12, 1, 9, 0, 0, 123_000_000, time.UTC), Status: storage.AuditSkipped,
		Error: `unknown modification_type "merged"`, Data: ev.RawData}, r)
	require.Same(t, &ev.RawData[0], &r.Data[0], "the data is the event's bytes")

	cfg, _, err := observers.Parse("a.yaml", []byte("observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions: [{type: log}, {type: log}]\n"))
	require.NoError(t, err)
	o := cfg.Observers[0]
	ev.Kind = observers.KindInsert
	long := strings.Repeat("é", observers.AuditErrorMax+10)
	r = observers.OutcomeRecord(ev, o, 1, 2, 5, storage.AuditFailed, long, 1500*time.Millisecond)
	require.Equal(t, "9:o:1:2:failed:replay5", r.ID)
	require.Equal(t, "INSERT", r.EventKind)
	require.Equal(t, "log", r.ActionType)
	require.Equal(t, 1, r.ActionIndex)
	require.Equal(t, int64(1500), r.DurationMS)
	require.Nil(t, r.Data)
	require.Equal(t, observers.AuditErrorMax, len([]rune(r.Error)), "the error is bounded")
	require.Equal(t, r.Timestamp, r.Timestamp.Truncate(time.Millisecond))
	require.Equal(t, time.UTC, r.Timestamp.Location())
}
