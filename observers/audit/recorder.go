package audit

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of Params.
const (
	BufferDefault        = observers.AuditBufferDefault
	BatchSizeDefault     = observers.AuditBatchSizeDefault
	FlushIntervalDefault = observers.AuditFlushIntervalDefault
	// WritersDefault is how many batches are written at once: one writer
	// (encoding its records' words and waiting on its statement) keeps up
	// with about 9,000 records/s on the 2-core bench machine under the
	// pipeline's load, less than the 2 records per delivery of its
	// throughput bench.
	WritersDefault = 4
	// BufferBytesDefault bounds the event data and error text of the
	// records waiting in the buffer: events may be megabytes each.
	BufferBytesDefault = 64 << 20
	// WriteTimeoutDefault bounds one write to the backend or the outbox.
	WriteTimeoutDefault = 10 * time.Second
	// DrainIntervalDefault is how often the drainer looks for outbox rows
	// due when it found none.
	DrainIntervalDefault = time.Second
	// RetryBaseDefault is the wait before an outbox row is first tried
	// again; it doubles with each failed attempt up to RetryMaxDefault.
	RetryBaseDefault = time.Second
	RetryMaxDefault  = 5 * time.Minute
	// HoldRetryMaxDefault caps the wait between two tries of a batch held
	// in memory (neither the backend nor the outbox took it).
	HoldRetryMaxDefault = 30 * time.Second
	// DropLogInterval is the least time between two warnings about
	// dropped records.
	DropLogInterval = 10 * time.Second
)

// Params configures a Recorder.
type Params struct {
	Store storage.Audit // the backend; required
	// Pool is the database of the outbox (observer_audit_outbox); required.
	Pool *pgxpool.Pool
	// Buffer is how many records may wait for the flusher; default 50,000.
	Buffer int
	// BufferBytes bounds the data and error text of the waiting records;
	// default 64 MiB.
	BufferBytes int64
	// BatchSize is the most records one write sends; default 5,000.
	BatchSize int
	// FlushInterval is the longest a record waits for a full batch;
	// default 1s.
	FlushInterval time.Duration
	// Writers is how many flushers take batches from the buffer and write
	// them at once; default 4 (WritersDefault).
	Writers int
	// WriteTimeout bounds each write; default 10s.
	WriteTimeout time.Duration
	// DrainInterval is the drainer's pause when the outbox had nothing
	// due; default 1s.
	DrainInterval time.Duration
	// RetryBase and RetryMax bound an outbox row's backoff; defaults 1s
	// and 5m.
	RetryBase, RetryMax time.Duration
	// HoldRetryMax caps the backoff of a batch held in memory; default
	// 30s.
	HoldRetryMax time.Duration
	Metrics      *Metrics // default: unregistered
	Logger       *slog.Logger
}

// WithDefaults returns p with zero fields set to their defaults.
func (p Params) WithDefaults() Params {
	p.Buffer = cmp.Or(p.Buffer, BufferDefault)
	p.BufferBytes = cmp.Or(p.BufferBytes, BufferBytesDefault)
	p.BatchSize = cmp.Or(p.BatchSize, BatchSizeDefault)
	p.FlushInterval = cmp.Or(p.FlushInterval, FlushIntervalDefault)
	p.Writers = cmp.Or(p.Writers, WritersDefault)
	p.WriteTimeout = cmp.Or(p.WriteTimeout, WriteTimeoutDefault)
	p.DrainInterval = cmp.Or(p.DrainInterval, DrainIntervalDefault)
	p.RetryBase = cmp.Or(p.RetryBase, RetryBaseDefault)
	p.RetryMax = cmp.Or(p.RetryMax, RetryMaxDefault)
	p.HoldRetryMax = cmp.Or(p.HoldRetryMax, HoldRetryMaxDefault)
	p.Metrics = cmp.Or(p.Metrics, NewMetrics(nil))
	p.Logger = cmp.Or(p.Logger, slog.New(slog.DiscardHandler))
	return p
}

func (p Params) validate() error {
	switch {
	case p.Store == nil:
		return errors.New("audit: Params.Store is required")
	case p.Pool == nil:
		return errors.New("audit: Params.Pool (the outbox's database) is required")
	case p.BatchSize > p.Buffer:
		return errors.Newf("audit: BatchSize (%d) is more than Buffer (%d)", p.BatchSize, p.Buffer)
	}
	return nil
}

// States of a Recorder.
const (
	stateNew int32 = iota
	stateRunning
	stateClosed
)

// Recorder is the audit trail's writer; see the package documentation. It
// implements observers.AuditRecorder. Run runs it; Close flushes it.
type Recorder struct {
	p        Params
	q        *dbsqlc.Queries
	backend  string
	byStatus map[storage.AuditStatus]prometheus.Counter

	buf   chan storage.AuditRecord
	bytes atomic.Int64 // data and error bytes of the records in buf and in the flusher's hands

	// mu orders Record's check of closed and its send against Close:
	// once closed is set under the write lock, no record is still on its
	// way into buf, so the last flush (or the count of drops) sees all.
	mu        sync.RWMutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeCtx  context.Context // Close's: bounds the last flush; set before stop is closed
	stop      chan struct{}   // closed by Close
	state     atomic.Int32    // stateNew, stateRunning (Run started first) or stateClosed (Close came first)
	done      chan struct{}   // closed when Run returns

	drops    atomic.Int64 // dropped since the last warning
	dropLog  atomic.Int64 // unix nanos of the last warning
	holdLog  logOnce      // the flusher's held batches, logged once per failing spell
	writeLog logOnce      // the backend's failures, logged once per failing spell
	drainLog logOnce      // the drainer's failures, logged once per failing spell
}

var _ observers.AuditRecorder = (*Recorder)(nil)

// New builds a Recorder; nothing runs until Run.
func New(p Params) (*Recorder, error) {
	p = p.WithDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &Recorder{
		p: p, q: dbsqlc.New(p.Pool), backend: p.Store.Backend(), byStatus: p.Metrics.statusCounters(),
		buf: make(chan storage.AuditRecord, p.Buffer), stop: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// Record takes rec for writing. It never blocks: when the buffer is full,
// or Close has begun, rec is dropped and counted.
func (r *Recorder) Record(rec storage.AuditRecord) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed.Load() {
		r.drop(1)
		return
	}
	size := recordBytes(&rec)
	if size > 0 && r.bytes.Add(size) > r.p.BufferBytes {
		r.bytes.Add(-size)
		r.drop(1)
		return
	}
	select {
	case r.buf <- rec:
		if c := r.byStatus[rec.Status]; c != nil {
			c.Inc()
		}
	default:
		r.bytes.Add(-size)
		r.drop(1)
	}
}

// recordBytes is what BufferBytes counts of rec.
func recordBytes(rec *storage.AuditRecord) int64 { return int64(len(rec.Data) + len(rec.Error)) }

// drop counts n dropped records and warns at most once per
// DropLogInterval.
func (r *Recorder) drop(n int) {
	r.p.Metrics.Dropped.Add(float64(n))
	r.drops.Add(int64(n))
	now := time.Now().UnixNano()
	last := r.dropLog.Load()
	if now-last < int64(DropLogInterval) || !r.dropLog.CompareAndSwap(last, now) {
		return
	}
	r.p.Logger.Warn("audit: records dropped; the buffer is full (the backend and the outbox fall behind) or the recorder is closing",
		slog.Int64("dropped", r.drops.Swap(0)), slog.Int("buffer", r.p.Buffer), slog.String("backend", r.backend))
}

// Run writes records until Close (or until ctx ends, without a last
// flush). It returns when the flusher and the drainer have stopped.
func (r *Recorder) Run(ctx context.Context) error {
	defer close(r.done)
	if !r.state.CompareAndSwap(stateNew, stateRunning) {
		return nil // closed before it ran: Close flushed the buffer itself
	}
	dctx, cancel := context.WithCancel(ctx)
	var drain, flush sync.WaitGroup
	drain.Go(func() { r.drainLoop(dctx) })
	for range r.p.Writers {
		flush.Go(func() { r.flushLoop(ctx) })
	}
	flush.Wait()
	cancel()
	drain.Wait()
	// ctx ended without Close: nothing writes any more; what is buffered,
	// and what comes later, is counted as dropped (after Close, nothing is
	// left).
	r.shut()
	if n := r.discard(); n > 0 {
		r.drop(n)
	}
	return nil
}

// shut makes Record drop from now on; no record is in flight after it.
func (r *Recorder) shut() {
	r.mu.Lock()
	r.closed.Store(true)
	r.mu.Unlock()
}

// Close stops taking records, writes those buffered (to the backend, else
// the outbox) and waits for Run to return, bounded by ctx. Records it
// cannot write in time are counted as dropped. Safe to call twice; Run
// returns at once after it.
func (r *Recorder) Close(ctx context.Context) error {
	first := false
	r.closeOnce.Do(func() {
		first = true
		r.shut()
		r.closeCtx = ctx
		close(r.stop)
	})
	if first && r.state.CompareAndSwap(stateNew, stateClosed) {
		r.flushRest(nil) // Run never started: flush here
		return nil
	}
	if r.state.Load() != stateRunning {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return errors.Wrap(ctx.Err(), "audit: close")
	}
}

// flushLoop gathers batches and writes them until Close or ctx's end.
func (r *Recorder) flushLoop(ctx context.Context) {
	batch := make([]storage.AuditRecord, 0, r.p.BatchSize)
	timer := time.NewTimer(r.p.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case rec := <-r.buf:
			if len(batch) == 0 {
				timer.Reset(r.p.FlushInterval)
			}
			batch = append(batch, rec)
			if len(batch) < r.p.BatchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		case <-r.stop:
			r.flushRest(batch)
			return
		case <-ctx.Done():
			if len(batch) > 0 {
				r.drop(len(batch)) // Run's context ended without Close: no last flush
			}
			return
		}
		if len(batch) > 0 {
			r.flush(ctx, batch, false)
			batch = batch[:0]
		}
	}
}

// flushRest writes batch and everything left in the buffer, bounded by
// Close's context; what is left when it ends is counted as dropped.
func (r *Recorder) flushRest(batch []storage.AuditRecord) {
	ctx := r.closeCtx
	for {
		for len(batch) < r.p.BatchSize {
			select {
			case rec := <-r.buf:
				batch = append(batch, rec)
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			return
		}
		if ctx.Err() != nil {
			n := len(batch) + r.discard()
			r.p.Logger.Warn("audit: shutdown ran out of time; records not written", slog.Int("records", n))
			r.drop(n)
			return
		}
		r.flush(ctx, batch, true)
		batch = batch[:0]
	}
}

// discard empties the buffer and returns how many records it held. Every
// flusher may call it at once: each record is counted by one of them.
func (r *Recorder) discard() int {
	n := 0
	for {
		select {
		case <-r.buf:
			n++
		default:
			return n
		}
	}
}

// flush writes batch to the backend, or what it did not take to the
// outbox; when neither takes it, it keeps trying with a backoff until ctx
// ends (or, after Close, until Close's context ends). closing is true when
// ctx is Close's.
func (r *Recorder) flush(ctx context.Context, batch []storage.AuditRecord, closing bool) {
	defer func() {
		var n int64
		for i := range batch {
			n += recordBytes(&batch[i])
		}
		r.bytes.Add(-n)
	}()
	stop := r.stop
	if closing {
		stop = nil
	}
	for attempt := 0; ; attempt++ {
		err := r.write(ctx, batch)
		if err == nil {
			r.holdLog.ok(r.p.Logger, "audit: the outbox takes records again")
			return
		}
		r.holdLog.fail(r.p.Logger, "audit: neither the backend nor the outbox took a batch; holding it in memory and retrying",
			slog.String("backend", r.backend), slog.Int("records", len(batch)), slog.String("error", err.Error()))
		wait := time.NewTimer(backoff(r.p.RetryBase, r.p.HoldRetryMax, attempt))
		select {
		case <-wait.C:
			continue
		case <-stop: // Close: from now on its context bounds the retries
			wait.Stop()
			ctx, stop = r.closeCtx, nil
			continue
		case <-ctx.Done():
			wait.Stop()
		}
		r.p.Logger.Warn("audit: records not written: the recorder stopped while the backend and the outbox were failing",
			slog.Int("records", len(batch)))
		r.drop(len(batch))
		return
	}
}

// backoff is base doubled attempt times, at most limit.
func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for range attempt {
		if d >= limit {
			break
		}
		d *= 2
	}
	return min(d, limit)
}

// logOnce logs a failure once per failing spell, and its end.
type logOnce struct {
	mu      sync.Mutex
	failing bool
}

func (l *logOnce) fail(logger *slog.Logger, msg string, attrs ...any) {
	l.mu.Lock()
	first := !l.failing
	l.failing = true
	l.mu.Unlock()
	if first {
		logger.Warn(msg, attrs...)
	}
}

func (l *logOnce) ok(logger *slog.Logger, msg string) {
	l.mu.Lock()
	was := l.failing
	l.failing = false
	l.mu.Unlock()
	if was {
		logger.Info(msg)
	}
}
