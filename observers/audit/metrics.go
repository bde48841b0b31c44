package audit

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Reasons of observer_search_index_failures_total.
const (
	ReasonUnavailable = "unavailable" // the whole write failed (the backend is down or timed out)
	ReasonRejected    = "rejected"    // the backend refused the record and would again: dropped
	ReasonItem        = "item"        // the backend failed the record alone, for a reason that may pass: retried
)

// Metrics are the audit trail's Prometheus metrics.
type Metrics struct {
	// IndexFailures counts records the backend failed to store, by backend
	// and reason; a record retried and failing again counts again.
	IndexFailures *prometheus.CounterVec
	// Records counts records taken into the buffer, by status.
	Records *prometheus.CounterVec
	// Dropped counts records dropped: the buffer was full, or Close ran
	// out of time.
	Dropped prometheus.Counter
	// OutboxSize is the outbox's rows; no labels (a vec so that Clear
	// removes the series). Database-wide: the daemon refreshes it on the
	// listener leader only.
	OutboxSize *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		IndexFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_search_index_failures_total",
			Help: "Audit records the search backend failed to store (count; a record retried and failing again counts again), " +
				"by backend and reason: unavailable (the whole write failed; kept in the outbox), item (the record alone failed; " +
				"kept in the outbox), rejected (refused for good; dropped).",
		}, []string{"backend", "reason"}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_audit_records_total",
			Help: "Audit records taken into the recorder's buffer (count), by status: received, skipped, succeeded, failed, dead, " +
				"deduplicated, cached. Dropped ones are in observer_audit_dropped_total.",
		}, []string{"status"}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_audit_dropped_total",
			Help: "Audit records dropped (count) because the recorder's buffer was full (the backend and the outbox fell behind) " +
				"or the shutdown ran out of time. No labels.",
		}),
		OutboxSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_audit_outbox_size",
			Help: "Audit records (count) in the Postgres outbox waiting to be written to the backend, no labels. " +
				"Database-wide: exported only by the listener leader, refreshed every 5s.",
		}, nil),
	}
	if reg != nil {
		reg.MustRegister(m.IndexFailures, m.Records, m.Dropped, m.OutboxSize)
	}
	return m
}

// RefreshOutbox sets observer_audit_outbox_size from the database; on
// failure it removes the series.
func (m *Metrics) RefreshOutbox(ctx context.Context, db dbsqlc.DBTX) error {
	n, err := dbsqlc.New(db).AuditOutboxCount(ctx)
	if err != nil {
		m.ClearOutbox()
		return err
	}
	m.OutboxSize.WithLabelValues().Set(float64(n))
	return nil
}

// ClearOutbox removes observer_audit_outbox_size: this instance does not
// report it.
func (m *Metrics) ClearOutbox() { m.OutboxSize.Reset() }

// statusCounters resolves the Records counter of every status once.
func (m *Metrics) statusCounters() map[storage.AuditStatus]prometheus.Counter {
	out := make(map[storage.AuditStatus]prometheus.Counter, len(storage.AuditStatuses))
	for _, s := range storage.AuditStatuses {
		out[s] = m.Records.WithLabelValues(string(s))
	}
	return out
}
