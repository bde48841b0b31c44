package storagetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Clock lets a fake server's time run forward (miniredis.FastForward). With
// a nil Clock the suite uses short TTLs and waits for them to pass in real
// time (with require.Eventually, never a bare sleep).
type Clock func(d time.Duration)

// CacheHarness makes the Cache under test.
type CacheHarness struct {
	// New returns an empty cache; keys of different calls must not collide
	// (use a distinct prefix per call on a shared server).
	New     func(t *testing.T) storage.Cache
	Advance Clock
}

// RunCache runs the Cache suite.
func RunCache(t *testing.T, h CacheHarness) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		_, err := c.Get(ctx, "absent")
		require.ErrorIs(t, err, storage.ErrNotFound)
	})
	t.Run("SetGetOverwriteDelete", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		require.NoError(t, c.Set(ctx, "k", []byte("one"), time.Minute))
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "one", string(v))
		require.NoError(t, c.Set(ctx, "k", []byte("two"), time.Minute))
		v, err = c.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "two", string(v))
		require.NoError(t, c.Set(ctx, "empty", nil, time.Minute))
		v, err = c.Get(ctx, "empty")
		require.NoError(t, err)
		require.Empty(t, v)
		require.NoError(t, c.Delete(ctx, "k", "empty", "never-set"))
		_, err = c.Get(ctx, "k")
		require.ErrorIs(t, err, storage.ErrNotFound)
		_, err = c.Get(ctx, "empty")
		require.ErrorIs(t, err, storage.ErrNotFound)
		require.NoError(t, c.Delete(ctx))
	})
	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		ttl := 300 * time.Millisecond
		require.NoError(t, c.Set(ctx, "short", []byte("v"), ttl))
		require.NoError(t, c.Set(ctx, "long", []byte("v"), time.Hour))
		_, err := c.Get(ctx, "short")
		require.NoError(t, err, "a value is there before its TTL")
		waitPast(t, h.Advance, ttl, func() bool {
			_, err := c.Get(ctx, "short")
			return errors.Is(err, storage.ErrNotFound)
		})
		_, err = c.Get(ctx, "long")
		require.NoError(t, err, "a value outlives a shorter TTL")
		// An expired key is free for SetNX again.
		ok, err := c.SetNX(ctx, "short", []byte("again"), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
	})
	t.Run("SetNX", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		ok, err := c.SetNX(ctx, "k", []byte("first"), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = c.SetNX(ctx, "k", []byte("second"), time.Minute)
		require.NoError(t, err)
		require.False(t, ok)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, "first", string(v))
	})
	t.Run("ConcurrentSetNXExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		const n = 32
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				val := fmt.Sprint("g", i)
				ok, err := c.SetNX(ctx, "contended", []byte(val), time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					wins.Add(1)
					winner.Store(val)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), wins.Load(), "exactly one SetNX wins")
		v, err := c.Get(ctx, "contended")
		require.NoError(t, err)
		require.Equal(t, winner.Load(), string(v), "the value is the winner's")
	})
	t.Run("RejectsNonPositiveTTL", func(t *testing.T) {
		t.Parallel()
		c := h.New(t)
		require.Error(t, c.Set(ctx, "k", []byte("v"), 0))
		_, err := c.SetNX(ctx, "k", []byte("v"), -time.Second)
		require.Error(t, err)
	})
}

// waitPast lets ttl pass (Advance, or real time) and then requires cond.
func waitPast(t *testing.T, advance Clock, ttl time.Duration, cond func() bool) {
	t.Helper()
	if advance != nil {
		advance(ttl + time.Millisecond)
		require.True(t, cond(), "expired after the clock moved past the TTL")
		return
	}
	require.Eventually(t, cond, ttl+10*time.Second, 20*time.Millisecond, "expired after the TTL")
}

// DedupHarness makes the Dedup under test.
type DedupHarness struct {
	// New returns a Dedup with the given window whose claims go through
	// transactions on pool (a fresh migrated database); keys of different
	// calls must not collide on a shared server.
	New     func(t *testing.T, pool *pgxpool.Pool, window time.Duration) storage.Dedup
	Advance Clock
}

// claim runs Claim in its own transaction and commits it (or rolls it back
// when commit is false).
func claim(t *testing.T, pool *pgxpool.Pool, d storage.Dedup, commit bool, keys ...string) []bool {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	fresh, err := d.Claim(ctx, tx, keys)
	require.NoError(t, err)
	require.Len(t, fresh, len(keys))
	if commit {
		require.NoError(t, tx.Commit(ctx))
	}
	return fresh
}

// RunDedup runs the Dedup suite.
func RunDedup(t *testing.T, h DedupHarness) {
	ctx := context.Background()
	t.Run("FreshThenSeen", func(t *testing.T) {
		t.Parallel()
		pool, _ := sqltest.NewDB(t)
		d := h.New(t, pool, time.Hour)
		require.Equal(t, []bool{true, true, false}, claim(t, pool, d, true, "a", "b", "a"),
			"a key repeated within one claim is fresh once")
		require.Equal(t, []bool{false, true, false}, claim(t, pool, d, true, "a", "c", "b"))
		require.Empty(t, claim(t, pool, d, true))
	})
	t.Run("RolledBackClaimIsVoid", func(t *testing.T) {
		// The crash between the claim and the commit: the replay must see
		// the key as fresh, or the event would be lost.
		t.Parallel()
		pool, _ := sqltest.NewDB(t)
		d := h.New(t, pool, time.Hour)
		require.Equal(t, []bool{true}, claim(t, pool, d, false, "k"))
		require.Equal(t, []bool{true}, claim(t, pool, d, false, "k"))
		require.Equal(t, []bool{true, true}, claim(t, pool, d, true, "k", "other"))
		require.Equal(t, []bool{false, false}, claim(t, pool, d, true, "k", "other"))
	})
	t.Run("ClaimWaitsForOpenClaim", func(t *testing.T) {
		t.Parallel()
		for _, commit := range []bool{true, false} {
			pool, _ := sqltest.NewDB(t)
			d := h.New(t, pool, time.Hour)
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }() // a failed assertion must not leave it open
			fresh, err := d.Claim(ctx, tx, []string{"k"})
			require.NoError(t, err)
			require.Equal(t, []bool{true}, fresh)
			second := make(chan []bool, 1)
			go func() {
				tx2, err := pool.Begin(ctx)
				if err != nil {
					second <- nil
					return
				}
				defer func() { _ = tx2.Rollback(ctx) }()
				f, err := d.Claim(ctx, tx2, []string{"k"})
				if err != nil {
					second <- nil
					return
				}
				_ = tx2.Commit(ctx)
				second <- f
			}()
			select {
			case f := <-second:
				t.Fatalf("a claim of a key held by an open transaction returned %v before it ended", f)
			case <-time.After(200 * time.Millisecond): // shows an absence only
			}
			if commit {
				require.NoError(t, tx.Commit(ctx))
				require.Equal(t, []bool{false}, <-second, "the first claim committed: seen")
			} else {
				require.NoError(t, tx.Rollback(ctx))
				require.Equal(t, []bool{true}, <-second, "the first claim rolled back: fresh")
			}
		}
	})
	t.Run("ConcurrentClaimsExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		pool, _ := sqltest.NewDB(t)
		d := h.New(t, pool, time.Hour)
		const n = 12
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tx, err := pool.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = tx.Rollback(ctx) }()
				f, err := d.Claim(ctx, tx, []string{"contended"})
				if err != nil {
					errs <- err
					return
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
				if f[0] {
					wins.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int32(1), wins.Load(), "exactly one committed claim finds the key fresh")
	})
	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		pool, _ := sqltest.NewDB(t)
		window := 500 * time.Millisecond
		d := h.New(t, pool, window)
		require.Equal(t, []bool{true}, claim(t, pool, d, true, "k"))
		require.Equal(t, []bool{false}, claim(t, pool, d, true, "k"), "seen within the window")
		waitPast(t, h.Advance, window, func() bool {
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			f, err := d.Claim(ctx, tx, []string{"k"}) // rolled back: probing only
			require.NoError(t, err)
			return f[0]
		})
		require.NoError(t, d.Cleanup(ctx))
		require.Equal(t, []bool{true}, claim(t, pool, d, true, "k"), "fresh again after the window")
		require.Equal(t, []bool{false}, claim(t, pool, d, true, "k"))
	})
}
