package river

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
)

// Event loader limits.
const (
	loaderMaxBatch    = 500              // pks per query
	loaderMaxInFlight = 2                // concurrent queries per change-log table
	loaderCacheSize   = 8192             // recently read events kept, at most
	loaderTimeout     = 30 * time.Second // per query
	// LoaderCacheBytes bounds the JSON text (observers.Event.Size) of the
	// events kept; decoded, an event takes a few times that.
	LoaderCacheBytes = 32 << 20
	// LoaderKeepMaxBytes: an event larger than this is never kept; its jobs
	// read it again, and it is freed when they complete.
	LoaderKeepMaxBytes = 256 << 10
)

// EventLoader reads the events of running jobs. Reads that arrive while a
// query is in flight wait for the next one, so under load one query serves
// many jobs, and an idle system answers at once without waiting for a batch
// to fill. Change-log rows do not change once written, so recently read
// events are kept: the jobs of one event's fan-out read it once, and the
// events the listener of the same process enqueued (Keep) are not read
// again at all.
type EventLoader struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	queues map[string]*loadQueue // by change-log table
	cache  map[cacheKey]*observers.Event
	ring   []cacheKey // kept keys in insertion order: count of them from head
	head   int
	count  int
	bytes  int64 // Size of the events in cache
}

type cacheKey struct {
	table string
	seq   int64
}

type loadQueue struct {
	pending  []*loadRequest
	inFlight int
}

type loadRequest struct {
	seq  int64
	res  changelog.Loaded
	done chan struct{}
}

// NewEventLoader returns a loader reading from pool; share one between the
// River client (WorkerParams.Events) and the Enqueuer.
func NewEventLoader(pool *pgxpool.Pool) *EventLoader {
	return &EventLoader{
		pool:   pool,
		queues: map[string]*loadQueue{},
		cache:  make(map[cacheKey]*observers.Event, loaderCacheSize),
		ring:   make([]cacheKey, loaderCacheSize),
	}
}

// Get returns change seq of cl.
func (l *EventLoader) Get(ctx context.Context, cl *changelog.ChangeLog, seq int64) (*observers.Event, error) {
	req := &loadRequest{seq: seq, done: make(chan struct{})}
	l.mu.Lock()
	if ev := l.cache[cacheKey{cl.Table(), seq}]; ev != nil {
		l.mu.Unlock()
		return ev, nil
	}
	q := l.queues[cl.Table()]
	if q == nil {
		q = &loadQueue{}
		l.queues[cl.Table()] = q
	}
	q.pending = append(q.pending, req)
	batch := l.take(q)
	l.mu.Unlock()
	if batch != nil {
		go l.run(cl, q, batch)
	}
	select {
	case <-req.done:
		return req.res.Event, req.res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// take starts a batch when a query slot is free. l.mu is held.
func (l *EventLoader) take(q *loadQueue) []*loadRequest {
	if q.inFlight >= loaderMaxInFlight || len(q.pending) == 0 {
		return nil
	}
	n := min(len(q.pending), loaderMaxBatch)
	batch := q.pending[:n:n]
	q.pending = q.pending[n:]
	q.inFlight++
	return batch
}

// run answers batch, then keeps answering what queued meanwhile.
func (l *EventLoader) run(cl *changelog.ChangeLog, q *loadQueue, batch []*loadRequest) {
	for batch != nil {
		seqs := make([]int64, 0, len(batch))
		seen := make(map[int64]bool, len(batch))
		for _, r := range batch {
			if !seen[r.seq] {
				seen[r.seq] = true
				seqs = append(seqs, r.seq)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), loaderTimeout)
		got, err := cl.GetMany(ctx, l.pool, seqs)
		cancel()

		l.mu.Lock()
		for _, r := range batch {
			switch {
			case err != nil:
				r.res = changelog.Loaded{Err: err}
			default:
				r.res = got[r.seq]
			}
			if r.res.Event != nil {
				l.remember(cacheKey{cl.Table(), r.seq}, r.res.Event)
			}
			close(r.done)
		}
		q.inFlight--
		batch = l.take(q)
		l.mu.Unlock()
	}
}

// remember caches ev, evicting the oldest entries while the cache is full
// by count or by bytes; an event over LoaderKeepMaxBytes is not kept.
// l.mu is held.
func (l *EventLoader) remember(k cacheKey, ev *observers.Event) {
	if _, ok := l.cache[k]; ok || ev.Size > LoaderKeepMaxBytes {
		return
	}
	for l.count == len(l.ring) || l.count > 0 && l.bytes+ev.Size > LoaderCacheBytes {
		old := l.ring[l.head]
		l.bytes -= l.cache[old].Size
		delete(l.cache, old)
		l.head = (l.head + 1) % len(l.ring)
		l.count--
	}
	l.ring[(l.head+l.count)%len(l.ring)] = k
	l.count++
	l.cache[k] = ev
	l.bytes += ev.Size
}

// Keep remembers the events of jobs, as the listener read them; nil keeps
// nothing.
func (l *EventLoader) Keep(jobs []listener.Job) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range jobs {
		l.remember(cacheKey{j.Table, j.Event.Seq}, j.Event)
	}
}

// GetMany returns the events seqs of cl: those kept or recently read from
// memory, the rest with one query. A missing row's Loaded.Err wraps
// storage.ErrNotFound.
func (l *EventLoader) GetMany(ctx context.Context, cl *changelog.ChangeLog, seqs []int64) (map[int64]changelog.Loaded, error) {
	out := make(map[int64]changelog.Loaded, len(seqs))
	var missing []int64
	l.mu.Lock()
	for _, seq := range seqs {
		if ev := l.cache[cacheKey{cl.Table(), seq}]; ev != nil {
			out[seq] = changelog.Loaded{Event: ev}
		} else {
			missing = append(missing, seq)
		}
	}
	l.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := cl.GetMany(ctx, l.pool, missing)
	if err != nil {
		return nil, err
	}
	for _, seq := range missing {
		out[seq] = got[seq]
	}
	return out, nil
}
