package observers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Metrics are the pipeline's Prometheus metrics. Names follow the dashboards
// shipped in deploy/ (observer_*).
type Metrics struct {
	EventsProcessed   prometheus.Counter     // change-log rows read and checkpointed
	EventsSkipped     *prometheus.CounterVec // rows recorded in observer_skipped_events, by reason
	EventsMatched     prometheus.Counter     // rows that matched at least one observer
	ConditionErrors   *prometheus.CounterVec // condition runtime errors, by observer
	JobsEnqueued      *prometheus.CounterVec // deliveries enqueued, by action type
	BatchFollowUps    *prometheus.CounterVec // batch deliveries continued as their own job, by action type and the state it starts in
	Batches           prometheus.Counter     // enqueue transactions committed
	BatchDuration     prometheus.Histogram   // time of one enqueue transaction
	BatchErrors       prometheus.Counter     // enqueue transactions that failed (and will be replayed)
	ActionsExecuted   *prometheus.CounterVec // delivery attempts, by action type and observer
	ActionsFailed     *prometheus.CounterVec // failed attempts, by action type, observer and class (transient|permanent)
	ActionDuration    *prometheus.HistogramVec
	IsLeader          prometheus.Gauge   // 1 while this instance leads its listener group
	CheckpointSeq     prometheus.Gauge   // pk of the last checkpointed change
	CheckpointTxID    prometheus.Gauge   // txid of the last checkpointed change
	LeaderChanges     prometheus.Counter // times this instance became leader
	HorizonHeldEvents prometheus.Gauge   // rows committed after the checkpoint that the horizon still holds back (sampled)

	DedupSkips   prometheus.Counter     // matched events not enqueued: their content key was seen within the window
	DedupErrors  *prometheus.CounterVec // dedup backend failures, by backend
	CacheHits    prometheus.Counter     // cache reads that found a value
	CacheMisses  prometheus.Counter     // cache reads that found none
	CacheHitRate prometheus.Gauge       // hits / (hits + misses) since start
	CacheErrors  *prometheus.CounterVec // cache backend failures, by backend

	cacheHits, cacheReads atomic.Int64
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsProcessed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_events_processed_total", Help: "Change-log rows read and checkpointed by the leader.",
		}),
		EventsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_events_skipped_total", Help: "Change-log rows that could not be processed and were recorded in observer_skipped_events.",
		}, []string{"reason"}),
		EventsMatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_events_matched_total", Help: "Change-log rows that matched at least one observer.",
		}),
		ConditionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_condition_errors_total", Help: "Conditions that failed at run time (treated as no match).",
		}, []string{"observer"}),
		JobsEnqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_jobs_enqueued_total", Help: "Deliveries enqueued (an action of an observer for one change), in a batch job or a River job of their own.",
		}, []string{"action_type"}),
		BatchFollowUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_batch_followups_total",
			Help: "Deliveries of batch jobs that continue as a River job of their own, by the state it starts in: retryable (failed, will retry), cancelled (permanent failure, DLQ), discarded (failed, no attempts left, DLQ), scheduled (circuit breaker open), available (not started in time).",
		}, []string{"action_type", "state"}),
		Batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_batches_total", Help: "Enqueue transactions committed.",
		}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "observer_batch_duration_seconds", Help: "Duration of one enqueue transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		BatchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_batch_errors_total", Help: "Enqueue transactions that failed and will be replayed.",
		}),
		ActionsExecuted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_executed_total", Help: "Action attempts executed.",
		}, []string{"action_type", "observer"}),
		ActionsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_failed_total", Help: "Action attempts that failed.",
		}, []string{"action_type", "observer", "class"}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "observer_action_duration_seconds", Help: "Duration of one action attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"action_type"}),
		IsLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_listener_is_leader", Help: "1 while this instance leads its listener group.",
		}),
		CheckpointSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_checkpoint_event_id", Help: "pk_entity_change_log of the last checkpointed change.",
		}),
		CheckpointTxID: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_checkpoint_txid", Help: "Transaction id of the last checkpointed change.",
		}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_leader_acquired_total", Help: "Times this instance became the leader of its listener group.",
		}),
		HorizonHeldEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_horizon_held_events", Help: "Committed change-log rows after the checkpoint that the transaction horizon still holds back (a long-open transaction); sampled whenever the leader finds nothing to read.",
		}),
		DedupSkips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_dedup_skips_total", Help: "Matched events not enqueued because the same content was seen within the dedup window.",
		}),
		DedupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_dedup_errors_total", Help: "Failures of the dedup backend (handled per dedup.on_error).",
		}, []string{"backend"}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_cache_hits_total", Help: "Cache reads that found a value.",
		}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_cache_misses_total", Help: "Cache reads that found no value.",
		}),
		CacheHitRate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_cache_hit_rate", Help: "Cache hits over cache reads since the process started.",
		}),
		CacheErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_cache_errors_total", Help: "Failures of the cache backend.",
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(m.EventsProcessed, m.EventsSkipped, m.EventsMatched, m.ConditionErrors,
			m.JobsEnqueued, m.BatchFollowUps, m.Batches, m.BatchDuration, m.BatchErrors, m.ActionsExecuted,
			m.ActionsFailed, m.ActionDuration, m.IsLeader, m.CheckpointSeq, m.CheckpointTxID,
			m.LeaderChanges, m.HorizonHeldEvents,
			m.DedupSkips, m.DedupErrors, m.CacheHits, m.CacheMisses, m.CacheHitRate, m.CacheErrors)
	}
	return m
}

// cacheRead records one cache read for the hit counters and the hit rate.
func (m *Metrics) cacheRead(hit bool) {
	reads := m.cacheReads.Add(1)
	hits := m.cacheHits.Load()
	if hit {
		hits = m.cacheHits.Add(1)
		m.CacheHits.Inc()
	} else {
		m.CacheMisses.Inc()
	}
	m.CacheHitRate.Set(float64(hits) / float64(reads))
}

// InstrumentCache wraps c so that its reads feed observer_cache_hits_total,
// observer_cache_misses_total and observer_cache_hit_rate, and its failures
// observer_cache_errors_total{backend}. Whoever reads the cache (the result
// cache of actions) should go through it.
func InstrumentCache(c storage.Cache, m *Metrics) storage.Cache {
	return &instrumentedCache{Cache: c, m: m}
}

type instrumentedCache struct {
	storage.Cache
	m *Metrics
}

func (c *instrumentedCache) fail(err error) error {
	if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, context.Canceled) {
		c.m.CacheErrors.WithLabelValues(c.Backend()).Inc()
	}
	return err
}

func (c *instrumentedCache) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := c.Cache.Get(ctx, key)
	switch {
	case err == nil:
		c.m.cacheRead(true)
	case errors.Is(err, storage.ErrNotFound):
		c.m.cacheRead(false)
	}
	return v, c.fail(err)
}

func (c *instrumentedCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.fail(c.Cache.Set(ctx, key, value, ttl))
}

func (c *instrumentedCache) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ok, err := c.Cache.SetNX(ctx, key, value, ttl)
	return ok, c.fail(err)
}

func (c *instrumentedCache) Delete(ctx context.Context, keys ...string) error {
	return c.fail(c.Cache.Delete(ctx, keys...))
}
