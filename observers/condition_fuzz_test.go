package observers_test

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// fuzzEvalAllocMax bounds what one evaluation may allocate: expr's own
// memory budget (a million list items) and the string limit keep far
// below it.
const fuzzEvalAllocMax = 512 << 20

// FuzzCondition compiles an arbitrary condition and evaluates it against
// an event whose data is the fuzzed JSON (or a fixed event when it is not
// an object): no panic, no hang, a condition over the limits refused
// before expr sees it, errors that do not echo the source whole, and
// bounded allocation while evaluating.
func FuzzCondition(f *testing.F) {
	f.Add("status == 'new' && total > 100", []byte(`{"status": "new", "total": 250}`))
	f.Add(strings.Repeat("(", 1_000_000)+"true"+strings.Repeat(")", 1_000_000), []byte(`{}`))
	f.Add(strings.Repeat("!", 100_000)+"true", []byte(`{}`))
	f.Add("len(reduce(1..40, #acc + #acc, 'x')) > 0", []byte(`{}`))
	f.Fuzz(func(t *testing.T, src string, data []byte) {
		c, err := observers.CompileCondition(src)
		if err != nil {
			if len(err.Error()) > 2000 {
				t.Fatalf("the error echoes the source: %.200s", err.Error())
			}
			return
		}
		if len(src) > observers.ConditionMaxBytes {
			t.Fatalf("a condition of %d bytes compiled", len(src))
		}
		ev := &observers.Event{ID: "e", Kind: observers.KindUpdate, EntityType: "Order", EntityID: "1",
			Data:   map[string]any{"status": "new", "total": 250.0, "tags": []any{"a", "b"}, "customer": map[string]any{"tier": "gold"}},
			Before: map[string]any{"status": "old"}}
		var obj map[string]any
		if json.Unmarshal(data, &obj) == nil && obj != nil {
			ev.Data = obj
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		ok, err := c.Eval(ev)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if took > fuzzSlow {
			t.Fatalf("evaluating %q took %s", src, took)
		}
		if err != nil && ok {
			t.Fatalf("an error matches: %v", err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > fuzzEvalAllocMax {
			t.Fatalf("evaluating %q allocated %d MiB", src, n>>20)
		}
	})
}
