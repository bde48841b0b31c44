package river

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
)

// The kept events are bounded by their bytes as well as by count, and an
// event over LoaderKeepMaxBytes is never kept: the worker's memory does not
// grow with the size of the rows it has delivered.
func TestEventLoaderKeepsBoundedBytes(t *testing.T) {
	t.Parallel()
	l := NewEventLoader(nil)
	job := func(seq, size int64) listener.Job {
		return listener.Job{Table: "log", Event: &observers.Event{Seq: seq, Size: size}}
	}
	l.Keep([]listener.Job{job(1, 100), job(2, LoaderKeepMaxBytes+1), job(3, 100)})
	require.Contains(t, l.cache, cacheKey{"log", 1})
	require.NotContains(t, l.cache, cacheKey{"log", 2}, "too large to keep")
	require.EqualValues(t, 200, l.bytes)

	// Fill past the byte budget with events just under the per-event limit:
	// the oldest go first and the total stays under the budget.
	var jobs []listener.Job
	n := int64(LoaderCacheBytes/LoaderKeepMaxBytes) + 10
	for i := range n {
		jobs = append(jobs, job(100+i, LoaderKeepMaxBytes))
	}
	l.Keep(jobs)
	require.LessOrEqual(t, l.bytes, int64(LoaderCacheBytes))
	require.NotContains(t, l.cache, cacheKey{"log", 1}, "the oldest was evicted")
	require.Contains(t, l.cache, cacheKey{"log", 100 + n - 1}, "the newest is kept")
	var sum int64
	for _, ev := range l.cache {
		sum += ev.Size
	}
	require.Equal(t, sum, l.bytes)
	require.Equal(t, len(l.cache), l.count)

	// By count: small events cycle through the ring.
	small := NewEventLoader(nil)
	for i := range int64(loaderCacheSize + 5) {
		small.Keep([]listener.Job{job(i, 1)})
	}
	require.Len(t, small.cache, loaderCacheSize)
	require.NotContains(t, small.cache, cacheKey{"log", 0})
}
