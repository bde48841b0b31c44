package listener

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// NotifyChannel is the channel the change-log trigger notifies on commit.
const NotifyChannel = "fraiseql_observers"

// HandoverChannel is notified by a leader that steps down cleanly.
const HandoverChannel = "fraiseql_observers_handover"

// Listener defaults.
const (
	StandbyRetryDefault      = time.Second
	HeartbeatIntervalDefault = 5 * time.Second
	// UnhealthyAfterFailures: this many batches failing in a row make the
	// leader unhealthy (/readyz, status).
	UnhealthyAfterFailures = 3
	// StallAfterDefault: a leader that consumed nothing for this long while
	// changes wait to be read is unhealthy.
	StallAfterDefault = time.Minute
)

// Role of an instance in its listener group.
type Role string

const (
	RoleLeader  Role = "leader"
	RoleStandby Role = "standby"
)

// Params configures a Listener.
type Params struct {
	Pool          *pgxpool.Pool
	Config        *observers.Config
	ConfigVersion int64 // id of Config in observer_config_versions
	Enqueuer      Enqueuer
	Logger        *slog.Logger
	Metrics       *Metrics

	InstanceID string // unique per process; default host-pid-start
	HTTPAddr   string // shown in observer_listeners
	Version    string // build version, shown in observer_listeners
	// Queues, when set, returns the River queues this process works and
	// the max workers of each; every heartbeat records them in
	// observer_listeners for `status`.
	Queues func() map[string]int

	StandbyRetry      time.Duration // how often a standby tries to take the lock; default 1s
	HeartbeatInterval time.Duration // default 5s (HeartbeatIntervalDefault)

	// BeforeCommit, when set, runs inside every enqueue transaction after the
	// jobs are inserted and before the checkpoint commits. Fault-injection
	// tests use it; an error rolls the batch back.
	BeforeCommit func(ctx context.Context, batch int) error

	// Dedup, when set and Config.Dedup.Enabled, claims the content key
	// (DedupKey) of every matched event inside the enqueue transaction and
	// skips the events already claimed by a committed batch within the
	// window. Config.Dedup.OnError says what a backend failure does.
	Dedup storage.Dedup

	// Audit, when set, records the audit trail's records the listener
	// alone knows of, once their batch commits: each skipped change
	// (skipped) and each delivery dedup kept from being enqueued
	// (deduplicated). The Enqueuer records the events it enqueues.
	Audit observers.AuditRecorder
}

// Listener is the reading half of the pipeline. Every instance runs one; the
// one holding the listener group's advisory lock leads: it reads the change
// log and enqueues jobs in the transaction that advances the checkpoint.
type Listener struct {
	p       Params
	log     *changelog.ChangeLog
	lockKey string
	logger  *slog.Logger

	// active is the configuration in force and its stored version; Reload
	// swaps it, and each batch reads it once.
	active atomic.Pointer[activeConfig]

	// drained is the checkpoint of a batch that found nothing (or less than
	// a full batch); the next wake first peeks from there without a
	// transaction. held is set while committed changes may be waiting above
	// the horizon: the lead loop then looks again soon (heldRetry), since
	// the transaction holding them back need not send a NOTIFY when it ends.
	// Only the lead loop uses them.
	drained   *changelog.Position
	held      bool
	heldRetry time.Duration

	// shrink halves the next batch's limits (rows and bytes) once per
	// failure in a row, down to one row; each success undoes one halving.
	// Only the lead loop uses it.
	shrink int

	hbMu       sync.Mutex // serialises heartbeat writes
	mu         sync.Mutex
	health     health
	role       Role
	leaderFrom time.Time
	startedAt  time.Time
	batches    int

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// New validates params and prepares a Listener; Start runs it.
func New(p Params) (*Listener, error) {
	if p.Pool == nil || p.Config == nil || p.Enqueuer == nil {
		return nil, errors.New("listener: Pool, Config and Enqueuer are required")
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Metrics == nil {
		p.Metrics = NewMetrics(nil)
	}
	if p.InstanceID == "" {
		host, _ := os.Hostname()
		p.InstanceID = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%1_000_000)
	}
	if p.StandbyRetry <= 0 {
		p.StandbyRetry = StandbyRetryDefault
	}
	if p.HeartbeatInterval <= 0 {
		p.HeartbeatInterval = HeartbeatIntervalDefault
	}
	cl, err := changelog.New(p.Config.Listener.Table)
	if err != nil {
		return nil, err
	}
	l := &Listener{
		p:       p,
		log:     cl,
		lockKey: "fraiseql-observers/listener/" + p.Config.Listener.ID,
		logger:  p.Logger.With(slog.String("listener_id", p.Config.Listener.ID), slog.String("instance_id", p.InstanceID)),
		role:    RoleStandby,
	}
	l.active.Store(&activeConfig{cfg: p.Config, version: p.ConfigVersion})
	return l, nil
}

// health is what the lead loop reports on its progress.
type health struct {
	failures   int       // batches failed in a row
	lastErr    string    // the last failure
	progressAt time.Time // the last batch that consumed rows (or leadership began)
	waiting    bool      // the last batch was cut by its limits or failed: rows wait
}

type activeConfig struct {
	cfg     *observers.Config
	version int64
}

// Reload puts cfg (stored as version) in force from the next batch on. Jobs
// already enqueued keep the version they were matched under. The listener
// group and its change log cannot change while running.
func (l *Listener) Reload(cfg *observers.Config, version int64) error {
	old := l.active.Load().cfg
	if cfg.Listener.ID != old.Listener.ID || cfg.Listener.Table != old.Listener.Table {
		return errors.WithHint(errors.Newf("listener.id and listener.table cannot change while running (%s on %s)",
			old.Listener.ID, old.Listener.Table), "restart the process to move to another listener group or change log")
	}
	l.active.Store(&activeConfig{cfg: cfg, version: version})
	return nil
}

// InstanceID identifies this process in observer_listeners.
func (l *Listener) InstanceID() string { return l.p.InstanceID }

// Role reports whether this instance currently leads.
func (l *Listener) Role() Role {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.role
}

// Start runs the listener in the background until Stop or ctx ends.
func (l *Listener) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.done = make(chan struct{})
	l.startedAt = time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.heartbeatLoop(ctx) }()
	go func() { defer wg.Done(); l.run(ctx) }()
	go func() { wg.Wait(); close(l.done) }()
	return nil
}

// Stop ends the listener and waits for it; the advisory lock is released so
// a standby takes over at once. Safe to call twice.
func (l *Listener) Stop() {
	l.stopOnce.Do(func() {
		if l.cancel == nil {
			return
		}
		l.cancel()
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := dbsqlc.New(l.p.Pool).ListenerDelete(ctx, l.p.InstanceID); err != nil {
			l.logger.Warn("listener: could not remove instance row", slog.String("error", err.Error()))
		}
	})
}

func (l *Listener) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := l.campaign(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.logger.Error("listener: leadership ended", slog.String("error", err.Error()))
		}
		sleepCtx(ctx, l.p.StandbyRetry)
	}
}
