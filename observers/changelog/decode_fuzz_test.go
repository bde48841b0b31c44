package changelog

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// The change-log row decoder takes whatever a writer put in the table:
// arbitrary JSON (or not JSON: a column may be text in another layout),
// huge documents, deep nesting, invalid UTF-8. It never panics, and a row
// it cannot decode comes back with a reason, never as an event.
func FuzzDecodeRow(f *testing.F) {
	f.Add("INSERT", `{"id": 1}`, ``, ``, `["a"]`, int64(0))
	f.Add("update", `{"status": "shipped"}`, `{"status": "new"}`, `{"source": "api"}`, `["status"]`, int64(0))
	f.Add("DELETE", `null`, `{"id": 2}`, `null`, ``, int64(0))
	f.Add("UPSERT", `{}`, ``, ``, ``, int64(0))
	f.Add("INSERT", `[1, 2, 3]`, ``, ``, ``, int64(0))
	f.Add("INSERT", strings.Repeat("[", 20000)+strings.Repeat("]", 20000), ``, ``, ``, int64(0))
	f.Add("INSERT", `{"a": "`+string([]byte{0xff, 0xfe})+`"}`, ``, ``, ``, int64(0))
	f.Add("INSERT", `{"big": "`+strings.Repeat("x", 1<<16)+`"}`, ``, ``, ``, int64(1<<16))
	f.Add("CUSTOM", `{"n": 1e400}`, ``, ``, `"not a list"`, int64(0))
	f.Fuzz(func(t *testing.T, kind, data, before, meta, updated string, size int64) {
		opt := func(s string) *string {
			if s == "" {
				return nil
			}
			return &s
		}
		id, entity := "0b5a6c1e-0000-4000-8000-000000000001", "Order"
		r := row{seq: 7, txid: "42", id: &id, kind: &kind, entityType: &entity, entityID: &entity,
			data: opt(data), before: opt(before), meta: opt(meta), updated: opt(updated), createdAt: time.Unix(0, 0), size: size}
		const maxBytes = 1 << 16
		ev, reason, err := decodeRow(r, maxBytes)
		if err != nil {
			t.Fatalf("a row's content is a reason, never an error: %v", err)
		}
		if ev == nil || ev.Seq != 7 || ev.TxID != 42 {
			t.Fatalf("the event keeps its position: %+v", ev)
		}
		if reason != "" {
			if !utf8.ValidString(reason) && utf8.ValidString(kind) {
				t.Fatalf("reason is not text: %q", reason)
			}
			if len(reason) > 512 {
				t.Fatalf("reason of %d bytes: a message quotes at most a short excerpt", len(reason))
			}
			return
		}
		if size > maxBytes {
			t.Fatalf("a row over max_event_bytes was decoded")
		}
		if _, ok := observers.ParseKind(kind); !ok || ev.Kind == "" {
			t.Fatalf("an unknown kind %q was decoded", kind)
		}
		if ev.Kind != observers.KindDelete && data != "" && data != "null" && ev.Data == nil {
			t.Fatalf("object_data %q decoded to no data", data)
		}
	})
}
