package breaker

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/sony/gobreaker/v2"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of Config.
const (
	CacheTTLDefault = 250 * time.Millisecond
	LockWaitDefault = 5 * time.Second
)

// breakerBuckets is the number of buckets of the rolling window.
const breakerBuckets = 10

// Config configures a Registry.
type Config struct {
	Store   storage.BreakerStore // shared state; required
	Metrics *Metrics             // default: unregistered metrics
	Logger  *slog.Logger         // default: discard
	// CacheTTL is how long Allow trusts its copy of a breaker's shared
	// state. Default 250ms.
	CacheTTL time.Duration
	// LockWait bounds the wait for a breaker's lock when recording
	// outcomes; outcomes that cannot be recorded are dropped. Default 5s.
	LockWait time.Duration
}

// Registry holds the circuit breakers of one process. It is safe for
// concurrent use.
type Registry struct {
	cfg Config

	mu       sync.Mutex
	breakers map[breakerKey]*breaker
}

// breakerKey: actions that target one endpoint with different settings
// share its state, each applying its own settings.
type breakerKey struct {
	endpoint string
	cfg      observers.CircuitBreakerConfig
}

// New returns a registry on cfg.Store.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("breaker: a store is required")
	}
	cfg.Metrics = cmp.Or(cfg.Metrics, NewMetrics(nil))
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, CacheTTLDefault)
	cfg.LockWait = cmp.Or(cfg.LockWait, LockWaitDefault)
	return &Registry{cfg: cfg, breakers: map[breakerKey]*breaker{}}, nil
}

// OpenError says that an endpoint's breaker rejects requests until
// Until (when it may half-open, or when its probes may have answered).
type OpenError struct {
	Endpoint string
	Until    time.Time
}

func (e *OpenError) Error() string {
	return "circuit breaker of " + e.Endpoint + " is open until " + e.Until.UTC().Format(time.RFC3339Nano)
}

// Allow implements observers.Breakers: it asks the breaker named endpoint
// (observers.EndpointName of the request's URL) for a request. It returns a
// permit (a *Permit, nil inside when cfg disables the breaker or the name is
// empty, which Done accepts), or an *observers.SnoozeError wrapping an
// *OpenError without sending anything. It never fails otherwise: when the
// shared state cannot be read it goes by the last state it knew.
func (r *Registry) Allow(ctx context.Context, endpoint string, cfg observers.CircuitBreakerConfig) (observers.BreakerPermit, error) {
	p, err := r.allow(ctx, endpoint, cfg)
	if err != nil {
		return nil, &observers.SnoozeError{Until: err.Until, Err: err}
	}
	return p, nil
}

var _ observers.Breakers = (*Registry)(nil)

func (r *Registry) allow(ctx context.Context, endpoint string, cfg observers.CircuitBreakerConfig) (*Permit, *OpenError) {
	if r == nil || cfg.Disabled || endpoint == "" {
		return nil, nil
	}
	b := r.breaker(endpoint, cfg.WithDefaults())
	now := time.Now()
	b.mu.Lock()
	if b.stale(now, r.cfg.CacheTTL) && !b.refreshing {
		b.refreshing = true
		b.mu.Unlock()
		st, err := b.view.read(r.cfg.Store)
		b.mu.Lock()
		b.refreshing = false
		if err != nil {
			b.readAt = now // retry after CacheTTL, do not hammer a failing store
			if !b.readFailed {
				r.cfg.Logger.WarnContext(ctx, "breaker: cannot read shared state; using the last known state",
					slog.String("endpoint", endpoint), slog.String("error", err.Error()))
			}
			b.readFailed = true
		} else {
			b.readFailed = false
			r.cache(b, st, now)
		}
	}
	defer b.mu.Unlock()
	st := b.state
	switch effectiveState(st, now) {
	case gobreaker.StateClosed:
		return &Permit{r: r, b: b}, nil
	case gobreaker.StateOpen:
		r.cfg.Metrics.Rejections.WithLabelValues(endpoint).Inc()
		return nil, &OpenError{Endpoint: endpoint, Until: st.Expiry}
	}
	if b.probes < b.maxProbes {
		b.probes++
		return &Permit{r: r, b: b, probe: true}, nil
	}
	r.cfg.Metrics.Rejections.WithLabelValues(endpoint).Inc()
	wait := min(max(b.cfg.Timeout/4, 50*time.Millisecond), 5*time.Second)
	return nil, &OpenError{Endpoint: endpoint, Until: now.Add(wait)}
}

// Permit is one admitted request; report its outcome with Done.
type Permit struct {
	r     *Registry
	b     *breaker
	probe bool
	done  atomic.Bool
}

// Done records the request's outcome: err is what the delivery
// returned. A nil permit, and a second call, do nothing. Done may record the
// outcomes of concurrent requests as well (a few milliseconds).
func (p *Permit) Done(ctx context.Context, err error) {
	if p == nil || !p.done.CompareAndSwap(false, true) {
		return
	}
	b := p.b
	b.mu.Lock()
	if p.probe {
		b.probes--
	}
	var snooze *observers.SnoozeError
	if errors.Is(err, observers.ErrPrivateTarget) || errors.Is(err, context.Canceled) || errors.As(err, &snooze) {
		b.mu.Unlock() // not sent after all (a snooze), or not the endpoint's doing
		return
	}
	// A healthy endpoint costs no write: while the breaker is closed and its
	// window holds no failure, successes are only counted here (each shared
	// write is a lock, a read and a write in Postgres). The trip decision
	// looks at the last sample_size requests, so at most that many deferred
	// successes are written ahead of the next failure: the ratio is the same
	// as if each had been written. A cached state up to CacheTTL old decides.
	success := err == nil || observers.IsPermanent(err)
	if success && !p.probe && b.healthy() {
		b.deferred = min(b.deferred+1, b.cfg.SampleSize)
		b.mu.Unlock()
		return
	}
	if b.deferred > 0 {
		b.pending = append(b.pending, make([]error, b.deferred)...)
		b.deferred = 0
	}
	b.pending = append(b.pending, err)
	if b.flushing {
		b.mu.Unlock()
		return // the running flush takes it
	}
	b.flushing = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		p.r.flush(context.WithoutCancel(ctx), b, batch)
		b.mu.Lock()
	}
	b.flushing = false
	b.mu.Unlock()
}

// breaker is one endpoint's breaker with one set of settings.
type breaker struct {
	name      string
	cfg       observers.CircuitBreakerConfig
	maxProbes int
	excused   uint32 // failed probes excluded in half-open
	dcb       *gobreaker.DistributedCircuitBreaker[struct{}]
	view      *sharedView

	mu         sync.Mutex
	state      gobreaker.SharedState // cached shared state
	readAt     time.Time             // zero: never read
	refreshing bool
	readFailed bool
	probes     int     // probes in flight from this instance
	pending    []error // outcomes waiting for a flush
	deferred   int     // successes not yet written (see Done), at most SampleSize
	flushing   bool

	transitions []gobreaker.State // made by the running flush; only the flusher touches it
}

func (r *Registry) breaker(endpoint string, cfg observers.CircuitBreakerConfig) *breaker {
	k := breakerKey{endpoint, cfg}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.breakers[k]; b != nil {
		return b
	}
	b := &breaker{name: endpoint, cfg: cfg, maxProbes: max(1, cfg.MinRequests/2)}
	b.excused = uint32(math.Floor(float64(b.maxProbes)*(1-cfg.SuccessThreshold) + 1e-9))
	b.view = &sharedView{b: b}
	// No I/O here: the view answers gobreaker's constructor from memory.
	dcb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](b.view, gobreaker.Settings{
		Name:         endpoint,
		MaxRequests:  uint32(b.maxProbes),
		Interval:     cfg.Window,
		BucketPeriod: max(cfg.Window/breakerBuckets, time.Millisecond),
		Timeout:      cfg.Timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= uint32(cfg.MinRequests) &&
				float64(c.TotalFailures) >= cfg.FailureThreshold*float64(c.Requests)
		},
		OnStateChange: func(_ string, _, to gobreaker.State) { b.transitions = append(b.transitions, to) },
		IsSuccessful:  func(err error) bool { return err == nil || observers.IsPermanent(err) },
		IsExcluded:    func(err error) bool { return errors.Is(err, errExcusedProbe) },
	})
	if err != nil { // the view cannot fail
		panic(err)
	}
	b.dcb = dcb
	b.view.initial, b.view.buf = b.view.buf, nil
	r.breakers[k] = b
	return b
}

// healthy reports, from the cached state, that the breaker is closed with no
// failure in its window; b.mu is held.
func (b *breaker) healthy() bool {
	return !b.readAt.IsZero() && b.state.State == gobreaker.StateClosed && b.state.Counts.TotalFailures == 0
}

// stale reports whether the cached state should be read again. An open
// breaker cannot change before its expiry.
func (b *breaker) stale(now time.Time, ttl time.Duration) bool {
	if b.readAt.IsZero() {
		return true
	}
	if b.state.State == gobreaker.StateOpen && now.Before(b.state.Expiry) {
		return false
	}
	return now.Sub(b.readAt) >= ttl
}

// cache stores st as b's known state; b.mu is held.
func (r *Registry) cache(b *breaker, st gobreaker.SharedState, now time.Time) {
	st.Buckets = nil // shared with the view; Allow needs none of them
	b.state, b.readAt = st, now
	r.cfg.Metrics.State.WithLabelValues(b.name).Set(float64(effectiveState(st, now)))
}

// effectiveState is the state a request sees: an open breaker whose timeout
// has run out is half-open.
func effectiveState(st gobreaker.SharedState, now time.Time) gobreaker.State {
	if st.State == gobreaker.StateOpen && !now.Before(st.Expiry) {
		return gobreaker.StateHalfOpen
	}
	return st.State
}

var errExcusedProbe = errors.New("breaker: failed probe within the success threshold")

// flush records a batch of outcomes under the breaker's lock.
func (r *Registry) flush(ctx context.Context, b *breaker, batch []error) {
	log := r.cfg.Logger.With(slog.String("endpoint", b.name))
	key := "gobreaker:mutex:" + b.name
	if err := r.lock(ctx, key); err != nil {
		log.WarnContext(ctx, "breaker: cannot lock shared state; outcomes dropped",
			slog.Int("outcomes", len(batch)), slog.String("error", err.Error()))
		return
	}
	defer func() {
		if err := r.cfg.Store.Unlock(key); err != nil {
			log.WarnContext(ctx, "breaker: unlock failed", slog.String("error", err.Error()))
		}
	}()
	if err := b.view.load(r.cfg.Store); err != nil {
		log.WarnContext(ctx, "breaker: cannot read shared state; outcomes dropped",
			slog.Int("outcomes", len(batch)), slog.String("error", err.Error()))
		return
	}
	from := effectiveState(b.view.st, time.Now())
	b.transitions = b.transitions[:0]
	for _, outcome := range batch {
		st := b.view.st
		if outcome != nil && !observers.IsPermanent(outcome) && effectiveState(st, time.Now()) == gobreaker.StateHalfOpen {
			excluded := uint32(0)
			if st.State == gobreaker.StateHalfOpen { // else the probe moves it there, clearing the counts
				excluded = st.Counts.TotalExclusions
			}
			if excluded < b.excused {
				outcome = errors.Mark(outcome, errExcusedProbe)
			}
		}
		_, _ = b.dcb.Execute(func() (struct{}, error) { return struct{}{}, outcome })
	}
	if b.view.dirty {
		if err := r.cfg.Store.SetData(stateKey(b.name), b.view.buf); err != nil {
			log.WarnContext(ctx, "breaker: cannot write shared state; outcomes dropped",
				slog.Int("outcomes", len(batch)), slog.String("error", err.Error()))
			return
		}
	}
	now := time.Now()
	b.mu.Lock()
	r.cache(b, b.view.st, now)
	b.mu.Unlock()
	for _, to := range b.transitions {
		r.cfg.Metrics.Transitions.WithLabelValues(b.name, to.String()).Inc()
		level := slog.LevelInfo
		if to == gobreaker.StateOpen {
			level = slog.LevelWarn
		}
		attrs := []any{slog.String("from", from.String()), slog.String("to", to.String())}
		if to == gobreaker.StateOpen {
			attrs = append(attrs, slog.Time("until", b.view.st.Expiry), slog.Duration("timeout", b.cfg.Timeout))
		}
		log.Log(ctx, level, "breaker: state changed", attrs...)
		from = to
	}
}

// lock takes the breaker's lock, retrying while another holder has it.
func (r *Registry) lock(ctx context.Context, key string) error {
	deadline := time.Now().Add(r.cfg.LockWait)
	wait := time.Millisecond
	for {
		err := r.cfg.Store.Lock(key)
		if err == nil || !errors.Is(err, storage.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func stateKey(name string) string { return "gobreaker:state:" + name }
