package resultcache

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// OpTimeoutDefault bounds each read or write of the result cache, so a slow
// backend delays a delivery by at most this much.
const OpTimeoutDefault = time.Second

// Config configures a Cache.
type Config struct {
	Store      storage.Cache         // where results are kept; required
	Registerer prometheus.Registerer // registers the cache metrics; nil: not registered
	Logger     *slog.Logger          // default: discard
}

// Cache implements observers.ResultCache on a storage.Cache. A cache
// failure never fails or holds back a delivery: it is logged and the
// request is sent. Within one process, identical requests in flight at once
// wait for the first, so a burst of the same change sends it once; across
// processes two may race and both send. It is safe for concurrent use.
type Cache struct {
	store  storage.Cache // instrumented
	logger *slog.Logger

	mu       sync.Mutex
	inflight map[string]chan struct{} // key → closed when its sender is done
}

var _ observers.ResultCache = (*Cache)(nil)

// New returns a Cache on cfg.Store, whose reads feed the cache metrics.
func New(cfg Config) (*Cache, error) {
	if cfg.Store == nil {
		return nil, errors.New("resultcache: a store is required")
	}
	return &Cache{
		store:    Instrument(cfg.Store, NewMetrics(cfg.Registerer)),
		logger:   cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		inflight: map[string]chan struct{}{},
	}, nil
}

// cachedResult is the value stored for a successful action.
type cachedResult struct {
	Status int       `json:"status,omitempty"` // the receiver's HTTP status (webhook)
	At     time.Time `json:"at"`
}

// ParseResult reads a value the cache stored: the receiver's HTTP status
// (0 when none) and when the result was saved.
func ParseResult(value []byte) (status int, at time.Time, err error) {
	var r cachedResult
	if err := json.Unmarshal(value, &r); err != nil {
		return 0, time.Time{}, errors.Wrap(err, "resultcache: decode a stored result")
	}
	return r.Status, r.At, nil
}

func noop() {}

// Lookup implements observers.ResultCache. A key of "" returns at once.
func (c *Cache) Lookup(ctx context.Context, key string) (hit bool, release func()) {
	if key == "" {
		return false, noop
	}
	var done chan struct{}
	for done == nil {
		c.mu.Lock()
		wait, busy := c.inflight[key]
		if !busy {
			done = make(chan struct{})
			c.inflight[key] = done
		}
		c.mu.Unlock()
		if busy {
			select {
			case <-wait:
			case <-ctx.Done():
				return false, noop
			}
		}
	}
	release = func() {
		c.mu.Lock()
		delete(c.inflight, key)
		c.mu.Unlock()
		close(done)
	}
	gctx, cancel := context.WithTimeout(ctx, OpTimeoutDefault)
	_, err := c.store.Get(gctx, key)
	cancel()
	switch {
	case err == nil:
		release()
		c.logger.DebugContext(ctx, "worker: served from the result cache", slog.String("cache_key", key))
		return true, noop
	case errors.Is(err, storage.ErrNotFound):
		return false, release
	default:
		release() // a failing backend must not serialise identical requests
		c.logger.WarnContext(ctx, "worker: result cache read failed; sending the request",
			slog.String("backend", c.store.Backend()), slog.String("error", err.Error()))
		return false, noop
	}
}

// Save implements observers.ResultCache; ttl 0 is observers.CacheTTLDefault.
func (c *Cache) Save(ctx context.Context, key string, status int, ttl time.Duration) {
	if key == "" {
		return
	}
	val, err := json.Marshal(cachedResult{Status: status, At: time.Now().UTC()})
	if err != nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), OpTimeoutDefault)
	defer cancel()
	if err := c.store.Set(sctx, key, val, cmp.Or(ttl, observers.CacheTTLDefault)); err != nil {
		c.logger.WarnContext(ctx, "worker: result cache write failed",
			slog.String("backend", c.store.Backend()), slog.String("error", err.Error()))
	}
}
