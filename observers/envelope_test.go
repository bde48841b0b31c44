package observers

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// EnvelopeJSON is byte for byte json.Marshal(Envelope(observer)), for every
// observer of one event, whichever it encodes first.
func TestEnvelopeJSONMatchesMarshal(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 13, 5, 9, 123456789, time.FixedZone("CET", 3600))
	events := []*Event{
		{Seq: 1, ID: "u1", Kind: KindInsert, EntityType: "Order", EntityID: "1", CreatedAt: at,
			Data: map[string]any{"total": 120.5}, RawData: []byte(`{"total": 120.5, "big": 12345678901234567890}`)},
		{Seq: 2, ID: "u2", Kind: KindUpdate, EntityType: "Order", EntityID: "<&>", CreatedAt: at, UserID: "7", TenantID: "t",
			Data: map[string]any{"status": "shipped"}, RawData: []byte(`{"status":"shipped"}`),
			Before: map[string]any{"status": "new"}},
		{Seq: 3, ID: "u3", Kind: KindDelete, EntityType: "Ünïcode \"quoted\"", EntityID: "x\ny", CreatedAt: at},
	}
	for _, ev := range events {
		for _, observer := range []string{"order_created", "", `we"ird <name> & ü`, "order_created"} {
			want, err := json.Marshal(ev.Envelope(observer))
			require.NoError(t, err)
			got, err := ev.EnvelopeJSON(observer)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "event %d, observer %q", ev.Seq, observer)
		}
	}
}
