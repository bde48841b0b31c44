package storage_test

import (
	"encoding/json"
	"math"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
)

func TestWords(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"a", "1002", "timed", "out", "linus", "example", "com", "12", "5", "éclair"},
		storage.Words("A-1002 timed_out linus@example.com 12.5 Éclair"))
	require.Empty(t, storage.Words(" -_- "))
}

func TestAuditAndDocText(t *testing.T) {
	t.Parallel()
	r := storage.AuditRecord{Error: "responded 503", Data: json.RawMessage(`{"customer": {"name": "Ada"}, "n": 12345678901234567890, "ok": true, "tags": ["x", null]}`)}
	words := storage.Words(storage.AuditText(&r))
	sort.Strings(words)
	require.Equal(t, []string{"12345678901234567890", "503", "ada", "responded", "true", "x"}, words, "values, not keys; big numbers exact")
	require.Equal(t, "", storage.DocText([]byte(`not json`)))
	require.Equal(t, "only error", storage.AuditText(&storage.AuditRecord{Error: "only error"}))
}

// External orders as Less does, within its documented range.
func TestVersionExternalOrdersAsLess(t *testing.T) {
	t.Parallel()
	vs := []storage.Version{{0, 1}, {0, 99}, {0, 1 << 40}, {3, 5}, {3, 6}, {4, 1}, {1 << 42, 7}, {1<<43 - 1, 1<<19 - 1}}
	for i := range vs {
		for j := range vs {
			require.Equal(t, vs[i].Less(vs[j]), vs[i].External() < vs[j].External(), "%v vs %v", vs[i], vs[j])
		}
		require.Positive(t, vs[i].External())
		require.LessOrEqual(t, vs[i].External(), int64(math.MaxInt64))
	}
}
