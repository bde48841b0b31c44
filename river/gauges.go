package river

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"
)

// GaugesTimeout bounds one refresh of the database-wide gauges.
const GaugesTimeout = 2 * time.Second

// Gauges are the workers' database-wide gauges, read from River's tables:
// observer_job_queue_depth{queue,state} and observer_dlq_size. One
// instance refreshes them (the daemon calls Refresh on the listener
// leader every few seconds); every other instance calls Clear and exports
// none of their series, so a sum or `metrics` across instances counts the
// database once.
type Gauges struct {
	queues func() []string // the queues this process works: reported even when empty
	Depth  *prometheus.GaugeVec
	DLQ    *prometheus.GaugeVec // no labels: a vec so that Clear removes the series
	shown  map[[2]string]bool   // the depth series set by the last refresh
}

// NewGauges creates the gauges and registers them on reg (nil: not
// registered). queues lists the queues this process works, reported with 0
// in every state when none of their jobs are.
func NewGauges(reg prometheus.Registerer, queues func() []string) *Gauges {
	g := &Gauges{
		queues: queues,
		Depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_job_queue_depth",
			Help: "Jobs (count) in each River queue of the observer, by queue and state: available, scheduled (a retry's delay, or snoozed by a circuit breaker or rate limit), retryable, running. Database-wide: exported only by the listener leader, refreshed every 5s.",
		}, []string{"queue", "state"}),
		DLQ: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_dlq_size",
			Help: "Dead deliveries (count) in the dead-letter queue: cancelled or discarded, batch deliveries counted one by one (as `dlq list`), no labels. Database-wide: exported only by the listener leader, refreshed every 5s.",
		}, nil),
	}
	if reg != nil {
		reg.MustRegister(g.Depth, g.DLQ)
	}
	return g
}

// Refresh reads the gauges from the database. On failure the series are
// removed (an absent series, not a stale or false value).
func (g *Gauges) Refresh(ctx context.Context, db Querier) error {
	ctx, cancel := context.WithTimeout(ctx, GaugesTimeout)
	defer cancel()
	depth, err := DepthByQueue(ctx, db)
	if err != nil {
		g.Clear()
		return err
	}
	dead, err := countDead(ctx, db)
	if err != nil {
		g.Clear()
		return err
	}
	for _, q := range g.queues() {
		if depth[q] == nil {
			depth[q] = map[string]int64{}
		}
	}
	shown := map[[2]string]bool{}
	for q, states := range depth {
		for _, s := range DepthStates {
			g.Depth.WithLabelValues(q, s).Set(float64(states[s]))
			shown[[2]string{q, s}] = true
		}
	}
	for k := range g.shown {
		if !shown[k] {
			g.Depth.DeleteLabelValues(k[0], k[1])
		}
	}
	g.shown = shown
	g.DLQ.WithLabelValues().Set(float64(dead))
	return nil
}

// Clear removes every series: this instance does not report them.
func (g *Gauges) Clear() {
	g.Depth.Reset()
	g.DLQ.Reset()
	g.shown = nil
}

// countDead counts the dead deliveries as CountDead does, in total.
func countDead(ctx context.Context, db Querier) (int64, error) {
	rows, err := db.Query(ctx, `SELECT count(*) FROM `+deadSQL)
	if err != nil {
		return 0, errors.Wrap(err, "count dead deliveries")
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, errors.Wrap(err, "count dead deliveries")
		}
	}
	return n, errors.Wrap(rows.Err(), "count dead deliveries")
}
