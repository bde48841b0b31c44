package storagetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// RateLimitHarness makes the RateLimitStores under test.
type RateLimitHarness struct {
	// New prepares a fresh backend (its own database, or its own key
	// prefix on a shared server) and returns a constructor of stores on it:
	// each store is one instance, all of them share the backend.
	New func(t *testing.T) func() storage.RateLimitStore
	// Advance moves the backend's clock (the one the store's algorithm
	// reads); nil: real time passes.
	Advance Clock
}

// RunRateLimitStore runs the RateLimitStore suite.
func RunRateLimitStore(t *testing.T, h RateLimitHarness) {
	ctx := context.Background()
	take := func(t *testing.T, s storage.RateLimitStore, key string, interval time.Duration, burst int) time.Duration {
		t.Helper()
		wait, err := s.Take(ctx, key, interval, burst)
		require.NoError(t, err)
		return wait
	}
	t.Run("BurstThenWaitLine", func(t *testing.T) {
		parallelUnlessClock(t, h.Advance)
		s := h.New(t)()
		for i := range 3 {
			require.Zero(t, take(t, s, "k", time.Hour, 3), "token %d of a full bucket", i+1)
		}
		// Nothing is left: each refused request gets the next place in line,
		// one interval after the one before, and takes nothing.
		for i := 1; i <= 3; i++ {
			wait := take(t, s, "k", time.Hour, 3)
			require.InDelta(t, float64(time.Duration(i)*time.Hour), float64(wait), float64(time.Minute), "place %d in line", i)
		}
		require.Zero(t, take(t, s, "other", time.Hour, 3), "buckets are per key")
		require.NotZero(t, take(t, s, "k", time.Hour, 3), "still empty")
	})
	t.Run("Refill", func(t *testing.T) {
		parallelUnlessClock(t, h.Advance)
		s := h.New(t)()
		interval := 300 * time.Millisecond
		require.Zero(t, take(t, s, "k", interval, 1))
		wait := take(t, s, "k", interval, 1)
		require.Positive(t, wait)
		require.LessOrEqual(t, wait, interval)
		waitPast(t, h.Advance, interval, func() bool { return take(t, s, "k", interval, 1) == 0 })
	})
	t.Run("WaitLineDrains", func(t *testing.T) {
		// A line left by requests that never came back does not hold later
		// ones once its places have passed.
		parallelUnlessClock(t, h.Advance)
		s := h.New(t)()
		interval := 200 * time.Millisecond
		require.Zero(t, take(t, s, "k", interval, 1))
		for range 5 {
			require.Positive(t, take(t, s, "k", interval, 1))
		}
		pass(h.Advance, 7*interval) // polling would queue up: each refusal is a place in line
		require.Zero(t, take(t, s, "k", interval, 1), "the bucket refilled")
		wait := take(t, s, "k", interval, 1)
		require.LessOrEqual(t, wait, interval, "the next refused request waits one interval, not behind the old line")
	})
	t.Run("InstancesShareBuckets", func(t *testing.T) {
		parallelUnlessClock(t, h.Advance)
		newStore := h.New(t)
		stores := []storage.RateLimitStore{newStore(), newStore()}
		const burst = 5
		var taken, refused atomic.Int32
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for range 5 {
					wait, err := stores[g%2].Take(ctx, "contended", time.Hour, burst)
					if err != nil {
						t.Errorf("take: %v", err)
						return
					}
					if wait == 0 {
						taken.Add(1)
					} else {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, burst, taken.Load(), "exactly the bucket's tokens, whoever asks")
		require.EqualValues(t, 40-burst, refused.Load())
	})
	t.Run("RejectsBadParameters", func(t *testing.T) {
		parallelUnlessClock(t, h.Advance)
		s := h.New(t)()
		_, err := s.Take(ctx, "k", 0, 1)
		require.Error(t, err)
		_, err = s.Take(ctx, "k", time.Second, 0)
		require.Error(t, err)
	})
}

// pass lets d pass: Advance, or real time.
func pass(advance Clock, d time.Duration) {
	if advance != nil {
		advance(d)
		return
	}
	<-time.After(d) // the condition under test is the time itself
}

// parallelUnlessClock runs a subtest in parallel unless the suite moves a
// fake clock: one clock shared by parallel subtests lets one subtest's
// Advance refill another's bucket in the middle of its checks.
func parallelUnlessClock(t *testing.T, advance Clock) {
	if advance == nil {
		t.Parallel()
	}
}
