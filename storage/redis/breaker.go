package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of BreakerStoreConfig.
const (
	BreakerPrefixDefault = "fraiseql-observers:breaker:"
	BreakerLeaseDefault  = 10 * time.Second
)

// BreakerStoreConfig configures a BreakerStore.
type BreakerStoreConfig struct {
	// Prefix starts every key: PREFIX lock:NAME holds a lock's token,
	// PREFIX state:NAME the breaker's state. Default
	// "fraiseql-observers:breaker:".
	Prefix string
	// Lease bounds how long a lock is held (the key's PX): a lock left by an
	// instance that died or stalled is free again after it. Default 10s.
	Lease time.Duration
	// OpTimeout bounds each call (the interface takes no context). Default 2s.
	OpTimeout time.Duration
	// Mirror, when set, is called after each successful SetData with the
	// same key and data. The daemon passes the Postgres store's SetData, so
	// that `status`, which reads observer_circuit_breakers, still shows the
	// breakers: one Postgres write per state write, no Postgres lock or
	// read. A failed mirror is logged, not returned (Redis holds the state).
	// Default none.
	Mirror func(key string, data []byte) error
	// Logger receives mirror failures. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields set to their defaults.
func (c BreakerStoreConfig) WithDefaults() BreakerStoreConfig {
	c.Prefix = cmp.Or(c.Prefix, BreakerPrefixDefault)
	c.Lease = cmp.Or(c.Lease, BreakerLeaseDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, OpTimeoutDefault)
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	return c
}

// BreakerStore keeps circuit-breaker state in Redis. A lock is a key set
// with SET NX PX (value: a token unique to the Lock call, lifetime: the
// lease) and released by a script that deletes it only while it still holds
// that token, so a holder whose lease expired never releases the next
// holder's lock. State is a plain key without TTL, like the Postgres row.
// Errors from Redis are marked storage.ErrUnavailable. It implements
// storage.BreakerStore and is safe for concurrent use.
type BreakerStore struct {
	rdb    goredis.UniversalClient
	cfg    BreakerStoreConfig
	prefix string // tokens: prefix + sequence
	seq    atomic.Uint64

	mu   sync.Mutex
	held map[string]string // name → token of the lock this store holds
}

var _ storage.BreakerStore = (*BreakerStore)(nil)

// NewBreakerStore returns a store on rdb.
func NewBreakerStore(rdb goredis.UniversalClient, cfg BreakerStoreConfig) *BreakerStore {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &BreakerStore{
		rdb: rdb, cfg: cfg.WithDefaults(),
		prefix: hex.EncodeToString(b[:]) + "-", held: map[string]string{},
	}
}

// unlockScript deletes KEYS[1] when it holds ARGV[1].
var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

func (s *BreakerStore) lockKey(name string) string  { return s.cfg.Prefix + "lock:" + name }
func (s *BreakerStore) stateKey(name string) string { return s.cfg.Prefix + "state:" + name }

func (s *BreakerStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.OpTimeout)
}

// Lock takes the lock of the breaker named by key without waiting, or
// returns storage.ErrLocked; like the Postgres store it is not reentrant.
// The caller retries (BreakerRegistry waits up to its LockWait).
func (s *BreakerStore) Lock(key string) error {
	name := storage.BreakerName(key)
	token := s.prefix + strconv.FormatUint(s.seq.Add(1), 10)
	ctx, cancel := s.ctx()
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, s.lockKey(name), token, s.cfg.Lease).Result()
	if err != nil {
		return unavailable(err, "lock circuit breaker "+name)
	}
	if !ok {
		return errors.Wrapf(storage.ErrLocked, "circuit breaker %s", name)
	}
	s.mu.Lock()
	s.held[name] = token
	s.mu.Unlock()
	return nil
}

// Unlock releases the lock taken by Lock; a lock lost meanwhile (its lease
// expired, another holder took it) is left alone.
func (s *BreakerStore) Unlock(key string) error {
	name := storage.BreakerName(key)
	s.mu.Lock()
	token, ok := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := unlockScript.Run(ctx, s.rdb, []string{s.lockKey(name)}, token).Err(); err != nil {
		return errors.WithHint(unavailable(err, "unlock circuit breaker "+name), "the lock expires by itself after its lease")
	}
	return nil
}

// GetData returns the breaker's serialized state, nil when it has none.
func (s *BreakerStore) GetData(key string) ([]byte, error) {
	name := storage.BreakerName(key)
	ctx, cancel := s.ctx()
	defer cancel()
	data, err := s.rdb.Get(ctx, s.stateKey(name)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err, "read circuit breaker "+name)
	}
	return data, nil
}

// SetData stores the breaker's serialized state, then mirrors it (see
// BreakerStoreConfig.Mirror).
func (s *BreakerStore) SetData(key string, data []byte) error {
	name := storage.BreakerName(key)
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.rdb.Set(ctx, s.stateKey(name), data, 0).Err(); err != nil {
		return unavailable(err, "write circuit breaker "+name)
	}
	if s.cfg.Mirror != nil {
		if err := s.cfg.Mirror(key, data); err != nil {
			s.cfg.Logger.Warn("redis breaker: cannot mirror state; status may show it late",
				slog.String("endpoint", name), slog.String("error", err.Error()))
		}
	}
	return nil
}
