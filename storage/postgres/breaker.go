package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of BreakerStoreConfig.
const (
	BreakerLeaseDefault     = 10 * time.Second
	BreakerOpTimeoutDefault = 5 * time.Second
)

// BreakerStoreConfig configures a BreakerStore.
type BreakerStoreConfig struct {
	// Lease bounds how long a lock is held: a lock left by an instance that
	// died (or stalled) is free again after it. The critical sections it
	// guards last milliseconds. Default 10s.
	Lease time.Duration
	// OpTimeout bounds each call (the interface takes no context). Default 5s.
	OpTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c BreakerStoreConfig) WithDefaults() BreakerStoreConfig {
	c.Lease = cmp.Or(c.Lease, BreakerLeaseDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, BreakerOpTimeoutDefault)
	return c
}

// BreakerStore keeps circuit-breaker state in observer_circuit_breakers and
// its locks as leases in observer_circuit_breaker_locks. No call holds a
// connection beyond its own query, so it never competes with itself for the
// pool. It implements storage.BreakerStore and is safe for concurrent use.
type BreakerStore struct {
	pool   *pgxpool.Pool
	q      *dbsqlc.Queries
	cfg    BreakerStoreConfig
	prefix string // owner tokens: prefix + sequence
	seq    atomic.Uint64

	mu   sync.Mutex
	held map[string]string // name → owner token of the lease this store holds
}

var _ storage.BreakerStore = (*BreakerStore)(nil)

// NewBreakerStore returns a store on pool.
func NewBreakerStore(pool *pgxpool.Pool, cfg BreakerStoreConfig) *BreakerStore {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &BreakerStore{
		pool: pool, q: dbsqlc.New(pool), cfg: cfg.WithDefaults(),
		prefix: hex.EncodeToString(b[:]) + "-", held: map[string]string{},
	}
}

func (s *BreakerStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.OpTimeout)
}

// Lock takes the lease of the breaker named by key, or returns
// storage.ErrLocked.
func (s *BreakerStore) Lock(key string) error {
	name := storage.BreakerName(key)
	owner := s.prefix + strconv.FormatUint(s.seq.Add(1), 10)
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.q.BreakerLockAcquire(ctx, dbsqlc.BreakerLockAcquireParams{
		Name: name, Owner: owner, LeaseSeconds: s.cfg.Lease.Seconds(),
	})
	err = interpretError(err)
	if errors.Is(err, storage.ErrNotFound) { // no row: another owner holds the lease
		return errors.Wrapf(storage.ErrLocked, "circuit breaker %s", name)
	}
	if err != nil {
		return errors.Wrapf(err, "lock circuit breaker %s", name)
	}
	s.mu.Lock()
	s.held[name] = owner
	s.mu.Unlock()
	return nil
}

// Unlock releases the lease taken by Lock; a lease lost meanwhile (expired,
// taken over) is left alone.
func (s *BreakerStore) Unlock(key string) error {
	name := storage.BreakerName(key)
	s.mu.Lock()
	owner, ok := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.q.BreakerLockRelease(ctx, dbsqlc.BreakerLockReleaseParams{Name: name, Owner: owner}); err != nil {
		return errors.Wrapf(interpretError(err), "unlock circuit breaker %s (the lease expires by itself)", name)
	}
	return nil
}

// GetData returns the breaker's serialized state, nil when it has none.
func (s *BreakerStore) GetData(key string) ([]byte, error) {
	name := storage.BreakerName(key)
	ctx, cancel := s.ctx()
	defer cancel()
	data, err := s.q.BreakerGet(ctx, name)
	err = interpretError(err)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Wrapf(err, "read circuit breaker %s", name)
	}
	return data, nil
}

// sharedState is the part of gobreaker's SharedState copied into columns.
type sharedState struct {
	State  int             `json:"state"` // 0 closed, 1 half-open, 2 open
	Counts json.RawMessage `json:"counts"`
	Expiry time.Time       `json:"expiry"`
}

var stateNames = []string{"closed", "half-open", "open"}

// SetData stores the breaker's serialized state and copies its state,
// expiry and counts into their columns.
func (s *BreakerStore) SetData(key string, data []byte) error {
	name := storage.BreakerName(key)
	var st sharedState
	if err := json.Unmarshal(data, &st); err != nil {
		return errors.Wrapf(err, "circuit breaker %s: state is not gobreaker's JSON", name)
	}
	if st.State < 0 || st.State >= len(stateNames) {
		return errors.Newf("circuit breaker %s: unknown state %d", name, st.State)
	}
	p := dbsqlc.BreakerSetParams{Name: name, State: stateNames[st.State], Data: data}
	if !st.Expiry.IsZero() {
		p.Expiry = &st.Expiry
	}
	if len(st.Counts) > 0 && string(st.Counts) != "null" {
		p.Counts = st.Counts
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.q.BreakerSet(ctx, p); err != nil {
		return errors.Wrapf(interpretError(err), "write circuit breaker %s", name)
	}
	return nil
}

// Cleanup deletes the breakers idle for a day that are not open (a fresh
// closed breaker is the same: their sample has long passed) and the leases
// that ran out; run it periodically. A row a registry still caches is read
// as a fresh closed breaker next time.
func (s *BreakerStore) Cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := s.q.BreakerCleanupStates(ctx); err != nil {
		return errors.Wrap(interpretError(err), "circuit breaker cleanup")
	}
	if _, err := s.q.BreakerCleanupLocks(ctx); err != nil {
		return errors.Wrap(interpretError(err), "circuit breaker lease cleanup")
	}
	return nil
}
