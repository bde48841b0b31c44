package river

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The queue-depth metric reads the database once per scrape at most, within
// QueueDepthTimeout, and serves that reading for QueueDepthCacheFor: several
// scrapers (or instances scraped together by `fraiseql-observers metrics`)
// cost one query.
const (
	QueueDepthTimeout  = 2 * time.Second
	QueueDepthCacheFor = 5 * time.Second
)

// queueDepth is the observer_job_queue_depth collector.
type queueDepth struct {
	db     Querier
	queues func() []string // the queues this process works: reported even when empty
	logger *slog.Logger
	desc   *prometheus.Desc
	// cacheFor and timeout are QueueDepthCacheFor and QueueDepthTimeout.
	cacheFor, timeout time.Duration

	mu     sync.Mutex
	readAt time.Time
	depth  map[string]int64 // nil after a failed read
}

// RegisterQueueDepth registers observer_job_queue_depth{queue} on reg: the
// jobs waiting (available, retryable, scheduled) in each of the observer's
// River queues, read from river_job when scraped. Every instance reports
// the same database-wide value; do not sum it across instances. queues
// lists the queues this process works, reported with 0 when none wait.
func RegisterQueueDepth(reg prometheus.Registerer, db Querier, queues func() []string, logger *slog.Logger) {
	reg.MustRegister(newQueueDepth(db, queues, logger))
}

func newQueueDepth(db Querier, queues func() []string, logger *slog.Logger) *queueDepth {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &queueDepth{
		db: db, queues: queues, logger: logger, cacheFor: QueueDepthCacheFor, timeout: QueueDepthTimeout,
		desc: prometheus.NewDesc("observer_job_queue_depth",
			"Jobs waiting in each River queue of the observer: available, retryable and scheduled (a retry's delay, or snoozed by a circuit breaker or rate limit). Read from the database (every instance reports the same value; do not sum across instances), at most once every 5s.",
			[]string{"queue"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector. A failed read reports nothing
// (an absent series, not a false 0) and is logged.
func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	depth := q.read()
	if depth == nil {
		return
	}
	for _, name := range q.queues() {
		if _, ok := depth[name]; !ok {
			ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, 0, name)
		}
	}
	for name, n := range depth {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), name)
	}
}

// read returns the cached depth, or reads it again once it is older than
// QueueDepthCacheFor. Concurrent scrapes wait for one read.
func (q *queueDepth) read() map[string]int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.readAt.IsZero() && time.Since(q.readAt) < q.cacheFor {
		return q.depth
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	depth, err := WaitingByQueue(ctx, q.db)
	q.readAt, q.depth = time.Now(), depth
	if err != nil {
		q.depth = nil
		q.logger.Warn("metrics: observer_job_queue_depth not reported; reading river_job failed", slog.String("error", err.Error()))
	}
	return q.depth
}
