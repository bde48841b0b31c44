package storagetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// BreakerHarness makes the BreakerStores under test.
type BreakerHarness struct {
	// New prepares a fresh backend (its own database, or its own key
	// prefix on a shared server) and returns a constructor of stores on it:
	// each store is one instance, all of them share the backend. lease is
	// the store's lock lease; 0 means its default.
	New     func(t *testing.T) func(lease time.Duration) storage.BreakerStore
	Advance Clock
}

// gobreaker's key names, as the registry and gobreaker itself use them.
const (
	mutexX = "gobreaker:mutex:x"
	stateX = "gobreaker:state:x"
)

// RunBreakerStore runs the BreakerStore suite.
func RunBreakerStore(t *testing.T, h BreakerHarness) {
	t.Run("LockIsExclusive", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		a, b := newStore(0), newStore(0)
		require.NoError(t, a.Lock(mutexX))
		require.ErrorIs(t, b.Lock(mutexX), storage.ErrLocked)
		require.ErrorIs(t, a.Lock(mutexX), storage.ErrLocked, "not reentrant")
		require.NoError(t, b.Lock("gobreaker:mutex:y"), "locks are per name")
		require.NoError(t, a.Unlock(mutexX))
		require.NoError(t, b.Lock(mutexX), "free once unlocked")
		require.ErrorIs(t, a.Lock(mutexX), storage.ErrLocked, "b holds it")
		require.NoError(t, b.Unlock(mutexX))
		require.NoError(t, b.Unlock("gobreaker:mutex:y"))
		require.NoError(t, a.Lock(mutexX))
	})
	t.Run("UnlockByNonHolderDoesNothing", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		a, b := newStore(0), newStore(0)
		require.NoError(t, a.Lock(mutexX))
		require.NoError(t, b.Unlock(mutexX), "unlocking a lock not held is a no-op, not an error")
		require.ErrorIs(t, b.Lock(mutexX), storage.ErrLocked, "a still holds it")
		require.NoError(t, a.Unlock(mutexX))
		require.NoError(t, a.Unlock(mutexX), "a second unlock is a no-op")
		require.NoError(t, b.Lock(mutexX))
	})
	t.Run("LeaseExpiryFreesDeadHolder", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		lease := time.Second
		dead, live := newStore(lease), newStore(0)
		require.NoError(t, dead.Lock(mutexX)) // and never unlocks
		require.ErrorIs(t, live.Lock(mutexX), storage.ErrLocked)
		waitPast(t, h.Advance, lease, func() bool { return live.Lock(mutexX) == nil })
		require.NoError(t, dead.Unlock(mutexX), "releasing a lost lease is not an error")
		require.ErrorIs(t, dead.Lock(mutexX), storage.ErrLocked, "and leaves live's lock alone")
	})
	t.Run("LockExcludesConcurrentHolders", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		stores := []storage.BreakerStore{newStore(0), newStore(0)}
		// Each holder increments a counter kept in the state (read, then
		// write): a lost update would show two holders at once.
		var taken atomic.Int64
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				s := stores[g%len(stores)]
				for range 15 {
					err := s.Lock(mutexX)
					if errors.Is(err, storage.ErrLocked) {
						continue
					}
					if err != nil {
						t.Errorf("lock: %v", err)
						return
					}
					n, err := generation(s)
					if err == nil {
						err = s.SetData(stateX, stateWithGeneration(n+1))
					}
					if err != nil {
						t.Errorf("read-modify-write under the lock: %v", err)
					} else {
						taken.Add(1)
					}
					if err := s.Unlock(mutexX); err != nil {
						t.Errorf("unlock: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		n, err := generation(stores[0])
		require.NoError(t, err)
		require.Positive(t, taken.Load())
		require.Equal(t, taken.Load(), n, "every holder's increment survives: never two holders at once")
	})
	t.Run("DataRoundTrip", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		a, b := newStore(0), newStore(0)
		data, err := a.GetData(stateX)
		require.NoError(t, err)
		require.Nil(t, data, "no state yet")
		state := `{"state":2,"generation":3,"age":0,"counts":{"Requests":4},"buckets":[{}],"start":"2026-01-01T00:00:00Z","expiry":"2026-01-01T00:01:00Z"}`
		require.NoError(t, a.SetData(stateX, []byte(state)))
		data, err = b.GetData(stateX)
		require.NoError(t, err)
		require.JSONEq(t, state, string(data), "another instance reads it")
		closed := `{"state":0,"generation":4,"age":0,"counts":{},"buckets":[{}],"start":"2026-01-01T00:00:00Z","expiry":"0001-01-01T00:00:00Z"}`
		require.NoError(t, b.SetData(stateX, []byte(closed)))
		data, err = a.GetData(stateX)
		require.NoError(t, err)
		require.JSONEq(t, closed, string(data), "a write replaces the state")
		data, err = a.GetData("gobreaker:state:other")
		require.NoError(t, err)
		require.Nil(t, data, "state is per name")
	})
	t.Run("LockAndDataAreIndependent", func(t *testing.T) {
		t.Parallel()
		newStore := h.New(t)
		a, b := newStore(0), newStore(0)
		state := `{"state":1,"counts":{},"buckets":[{}],"expiry":"0001-01-01T00:00:00Z"}`
		require.NoError(t, a.Lock(mutexX))
		require.NoError(t, a.SetData(stateX, []byte(state)), "the holder writes the state of the name it locked")
		require.NoError(t, a.Unlock(mutexX))
		data, err := b.GetData(stateX)
		require.NoError(t, err)
		require.JSONEq(t, state, string(data), "unlocking keeps the state")
		require.NoError(t, b.Lock(mutexX), "writing the state leaves the lock free")
	})
}

// generation reads the counter that LockExcludesConcurrentHolders keeps in
// gobreaker's generation field (0 when there is no state).
func generation(s storage.BreakerStore) (int64, error) {
	data, err := s.GetData(stateX)
	if err != nil || data == nil {
		return 0, err
	}
	var st struct {
		Generation int64 `json:"generation"`
	}
	return st.Generation, json.Unmarshal(data, &st)
}

func stateWithGeneration(n int64) []byte {
	return fmt.Appendf(nil, `{"state":0,"generation":%d,"counts":{},"buckets":[{}],"expiry":"0001-01-01T00:00:00Z"}`, n)
}
