package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers/audit"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// GaugeIntervalDefault is how often the listener leader refreshes the
// database-wide gauges (queue depth, DLQ size, listener lag, healthy
// listeners).
const GaugeIntervalDefault = 5 * time.Second

// gaugeRefresher reads the database-wide gauges every interval while this
// instance leads its listener group, and clears them otherwise: one
// instance queries the database however many scrape, and only it exports
// those series, so they are not counted once per instance.
type gaugeRefresher struct {
	interval time.Duration
	listener *listener.Listener
	river    *obsriver.Gauges
	audit    *audit.Metrics // observer_audit_outbox_size
	pool     *pgxpool.Pool
	logger   *slog.Logger

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	failing  bool // the last refresh failed (logged once until one succeeds)
}

// Start runs the refresher in the background until Stop.
func (g *gaugeRefresher) Start(ctx context.Context) error {
	ctx, g.cancel = context.WithCancel(ctx)
	g.done = make(chan struct{})
	go func() {
		defer close(g.done)
		t := time.NewTicker(g.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.tick(ctx)
			}
		}
	}()
	return nil
}

// Stop ends the refresher and waits for it. Safe to call twice.
func (g *gaugeRefresher) Stop() {
	g.stopOnce.Do(func() {
		if g.cancel != nil {
			g.cancel()
			<-g.done
		}
	})
}

func (g *gaugeRefresher) tick(ctx context.Context) {
	if g.listener.Role() != listener.RoleLeader {
		g.river.Clear()
		g.listener.ClearGauges()
		g.audit.ClearOutbox()
		return
	}
	err := g.river.Refresh(ctx, g.pool)
	if err == nil {
		err = g.listener.RefreshGauges(ctx)
	}
	if err == nil {
		err = g.refreshOutbox(ctx)
	}
	switch {
	case err != nil && ctx.Err() == nil && !g.failing:
		g.failing = true
		g.logger.Warn("metrics: database-wide gauges not reported; reading them failed", slog.String("error", err.Error()))
	case err == nil:
		g.failing = false
	}
}

// refreshOutbox reads observer_audit_outbox_size, with the others' 2s
// bound. It is read whether audit: is on or not: rows left by a run with
// it on wait there until one drains them.
func (g *gaugeRefresher) refreshOutbox(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return g.audit.RefreshOutbox(ctx, g.pool)
}
