package observers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

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
	BatchTimeoutDefault      = 30 * time.Second
)

// Role of an instance in its listener group.
type Role string

const (
	RoleLeader  Role = "leader"
	RoleStandby Role = "standby"
)

// ListenerParams configures a Listener.
type ListenerParams struct {
	Pool          *pgxpool.Pool
	Config        *Config
	ConfigVersion int64 // id of Config in observer_config_versions
	Enqueuer      Enqueuer
	Logger        *slog.Logger
	Metrics       *Metrics

	InstanceID string // unique per process; default host-pid-start
	HTTPAddr   string // shown in observer_listeners
	Version    string // build version, shown in observer_listeners

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
}

// Listener is the reading half of the pipeline. Every instance runs one; the
// one holding the listener group's advisory lock leads: it reads the change
// log and enqueues jobs in the transaction that advances the checkpoint.
type Listener struct {
	p       ListenerParams
	log     *ChangeLog
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
	drained   *Position
	held      bool
	heldRetry time.Duration

	mu         sync.Mutex
	role       Role
	leaderFrom time.Time
	startedAt  time.Time
	batches    int

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// NewListener validates params and prepares a Listener; Start runs it.
func NewListener(p ListenerParams) (*Listener, error) {
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
	cl, err := NewChangeLog(p.Config.Listener.Table)
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

type activeConfig struct {
	cfg     *Config
	version int64
}

// Reload puts cfg (stored as version) in force from the next batch on. Jobs
// already enqueued keep the version they were matched under. The listener
// group and its change log cannot change while running.
func (l *Listener) Reload(cfg *Config, version int64) error {
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

// campaign connects a dedicated session, waits until it holds the group's
// advisory lock, then leads until the session breaks or ctx ends. Postgres
// frees the lock the moment the session dies, so a killed leader is replaced
// within one StandbyRetry.
func (l *Listener) campaign(ctx context.Context) error {
	cc := l.p.Pool.Config().ConnConfig.Copy()
	// Time out waits by deadline rather than a cancel request, so a timed-out
	// WaitForNotification leaves the session (and its lock) intact.
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return errors.Wrap(err, "listener: connect lock session")
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // closing the session releases the lock
	}()
	if err := dbsqlc.New(l.p.Pool).CheckpointEnsure(ctx, l.p.Config.Listener.ID); err != nil {
		return errors.Wrap(err, "listener: ensure checkpoint row")
	}
	// A standby waits for the lock on a handover notification, so a leader
	// that stops cleanly is replaced at once; StandbyRetry covers a leader
	// that dies without a word.
	if _, err := conn.Exec(ctx, "LISTEN "+HandoverChannel); err != nil {
		return errors.Wrap(err, "listener: LISTEN handover")
	}
	for attempt := 0; ; attempt++ {
		var got bool
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.QueryRow(qctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, l.lockKey).Scan(&got)
		cancel()
		if err != nil {
			return errors.Wrap(err, "listener: try advisory lock")
		}
		if got {
			break
		}
		if attempt == 0 {
			l.logger.Info("listener: standing by; another instance leads")
		}
		wctx, cancel := context.WithTimeout(ctx, l.p.StandbyRetry)
		_, err = conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !(timedOut || pgconn.Timeout(err)) {
			return errors.Wrap(err, "listener: standby session lost")
		}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return errors.Wrap(err, "listener: LISTEN")
	}
	l.setRole(ctx, RoleLeader)
	defer l.setRole(context.WithoutCancel(ctx), RoleStandby)
	defer func() {
		if ctx.Err() == nil {
			return // leadership lost, not a shutdown: nothing to hand over
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// Unlock, then wake the standbys; both take effect before this returns.
		if _, err := conn.Exec(hctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0)), pg_notify($2, $3)`,
			l.lockKey, HandoverChannel, l.p.Config.Listener.ID); err != nil {
			l.logger.Warn("listener: handover notification failed; standbys take over within their retry", slog.String("error", err.Error()))
			return
		}
		l.logger.Info("listener: handed leadership over")
	}()
	l.logger.Info("listener: became leader", slog.String("table", l.log.Table()))
	return l.lead(ctx, conn)
}

// lead drains the log, then sleeps until a NOTIFY or the poll interval.
// While committed changes wait above the horizon, the leader looks again
// after heldRetryMin, doubling up to heldRetryMax (and never beyond the poll
// interval): the transaction holding them back may end without a NOTIFY.
const (
	heldRetryMin = time.Millisecond
	heldRetryMax = 100 * time.Millisecond
)

func (l *Listener) lead(ctx context.Context, conn *pgx.Conn) error {
	l.drained, l.held = nil, false
	for {
		cfg := l.active.Load().cfg.Listener
		for {
			n, err := l.processBatch(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				l.p.Metrics.BatchErrors.Inc()
				l.logger.Error("listener: batch failed; it will be read again", slog.String("error", err.Error()))
				l.held = false // retry after the poll interval, not at the held-horizon pace
				break
			}
			if n < cfg.BatchSize {
				break
			}
			if conn.IsClosed() {
				return errors.New("listener: lock session closed")
			}
		}
		wait := cfg.PollInterval
		if l.held {
			// Back off from heldRetryMin towards the poll interval while the
			// horizon stays held.
			l.heldRetry = min(max(2*l.heldRetry, heldRetryMin), heldRetryMax, cfg.PollInterval)
			wait = l.heldRetry
		} else {
			l.heldRetry = 0
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !(timedOut || pgconn.Timeout(err)) {
			return errors.Wrap(err, "listener: lock session lost")
		}
		if conn.IsClosed() {
			return errors.New("listener: lock session closed")
		}
	}
}

// processBatch is the one transaction the delivery guarantee rests on: lock
// the checkpoint row (fencing any other would-be leader), read the next batch
// below the committed horizon, enqueue one job per matched action, advance
// the checkpoint, commit. It returns the number of rows consumed.
func (l *Listener) processBatch(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, BatchTimeoutDefault)
	defer cancel()
	if l.drained != nil {
		// Idle wakes (polls, notifications for rows still above the horizon)
		// cost one read-only query instead of a locking transaction. Another
		// leader can only have moved the checkpoint forward, so a stale
		// position errs towards looking.
		more, held, err := l.log.Peek(ctx, l.p.Pool, *l.drained)
		if err != nil {
			return 0, err
		}
		l.p.Metrics.HorizonHeldEvents.Set(float64(held))
		l.held = held > 0
		if !more {
			return 0, nil
		}
		l.drained = nil
	}
	start := time.Now()
	tx, err := l.p.Pool.Begin(ctx)
	if err != nil {
		return 0, errors.Wrap(err, "begin enqueue transaction")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The commit need not wait for its WAL flush: a crash can lose only a
	// whole enqueue transaction (jobs and checkpoint together, never one
	// without the other), and the batch is then read again. Deliveries stay
	// at least once; the batch skips a disk flush on the hot path.
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return 0, errors.Wrap(err, "set synchronous_commit")
	}

	a := l.active.Load()
	q := dbsqlc.New(tx)
	listenerID := a.cfg.Listener.ID
	cp, err := q.CheckpointLock(ctx, listenerID)
	if err != nil {
		return 0, errors.Wrap(err, "lock checkpoint")
	}
	pos := Position{TxID: uint64(cp.Txid), Seq: cp.EventID}
	events, skipped, last, err := l.log.ReadBatch(ctx, tx, pos, a.cfg.Listener.BatchSize)
	if err != nil {
		return 0, err
	}
	n := len(events) + len(skipped)
	if n == 0 {
		l.drained, l.held = &pos, true // the next look peeks, and counts what is held
		return 0, nil
	}

	var matchedEvents []*Event
	var matches [][]Match
	for _, ev := range events {
		ms := a.cfg.Match(ev, func(o *Observer, err error) {
			l.p.Metrics.ConditionErrors.WithLabelValues(o.Name).Inc()
			l.logger.Warn("listener: condition failed; treated as no match",
				slog.String("observer", o.Name), slog.Int64("event_seq", ev.Seq),
				slog.String("entity_type", ev.EntityType), slog.String("error", err.Error()))
		})
		if len(ms) > 0 {
			matchedEvents = append(matchedEvents, ev)
			matches = append(matches, ms)
		}
	}
	fresh, err := l.dedup(ctx, tx, a.cfg, matchedEvents)
	if err != nil {
		return 0, err
	}
	var jobs []Job
	dedupSkips := 0
	for i, ev := range matchedEvents {
		if fresh != nil && !fresh[i] {
			dedupSkips++
			l.logger.Debug("listener: duplicate change skipped", slog.Int64("event_seq", ev.Seq),
				slog.String("entity_type", ev.EntityType), slog.String("entity_id", ev.EntityID))
			continue
		}
		for _, m := range matches[i] {
			jobs = append(jobs, Job{Table: l.log.Table(), Event: ev, Observer: m.Observer, ActionIndex: m.ActionIndex, ConfigVersion: a.version})
		}
	}
	if len(jobs) > 0 {
		if err := l.p.Enqueuer.EnqueueTx(ctx, tx, jobs); err != nil {
			return 0, errors.Wrap(err, "enqueue jobs")
		}
	}
	if len(skipped) > 0 {
		pks := make([]int64, len(skipped))
		reasons := make([]string, len(skipped))
		for i, s := range skipped {
			pks[i], reasons[i] = s.Seq, s.Reason
			l.logger.Warn("listener: change skipped", slog.Int64("event_seq", s.Seq), slog.String("reason", s.Reason))
		}
		if _, err := q.SkippedEventInsertMany(ctx, dbsqlc.SkippedEventInsertManyParams{
			ListenerID: listenerID, ChangePks: pks, Reasons: reasons,
		}); err != nil {
			return 0, errors.Wrap(err, "record skipped changes")
		}
	}
	l.mu.Lock()
	l.batches++
	batchNo := l.batches
	l.mu.Unlock()
	if l.p.BeforeCommit != nil {
		if err := l.p.BeforeCommit(ctx, batchNo); err != nil {
			return 0, errors.Wrap(err, "before commit")
		}
	}
	if _, err := q.CheckpointAdvance(ctx, dbsqlc.CheckpointAdvanceParams{
		ListenerID: listenerID, Txid: int64(last.TxID), EventID: last.Seq, EventsProcessedDelta: int64(n),
	}); err != nil {
		return 0, errors.Wrap(err, "advance checkpoint")
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, errors.Wrap(err, "commit enqueue transaction")
	}

	if n < a.cfg.Listener.BatchSize {
		// Caught up, or stopped by the horizon: the next look peeks.
		l.drained, l.held = &last, true
	}
	m := l.p.Metrics
	m.Batches.Inc()
	m.BatchDuration.Observe(time.Since(start).Seconds())
	m.EventsProcessed.Add(float64(n))
	m.EventsMatched.Add(float64(len(matchedEvents)))
	m.DedupSkips.Add(float64(dedupSkips))
	for _, s := range skipped {
		m.EventsSkipped.WithLabelValues(skipReasonLabel(s.Reason)).Inc()
	}
	for _, j := range jobs {
		m.JobsEnqueued.WithLabelValues(j.Observer.Actions[j.ActionIndex].Type).Inc()
	}
	m.CheckpointSeq.Set(float64(last.Seq))
	m.CheckpointTxID.Set(float64(last.TxID))
	l.logger.Debug("listener: batch committed", slog.Int("rows", n), slog.Int("jobs", len(jobs)),
		slog.Int64("checkpoint_seq", last.Seq), slog.Duration("took", time.Since(start)))
	return n, nil
}

// dedup claims the content keys of the matched events in tx and reports
// which are fresh; nil means every event is (dedup off, or the backend failed
// under on_error: process). Keys are scoped by listener id.
func (l *Listener) dedup(ctx context.Context, tx pgx.Tx, cfg *Config, events []*Event) ([]bool, error) {
	d := l.p.Dedup
	if d == nil || !cfg.Dedup.Enabled || len(events) == 0 {
		return nil, nil
	}
	keys := make([]string, len(events))
	for i, ev := range events {
		keys[i] = cfg.Listener.ID + "/" + DedupKey(ev)
	}
	fresh, err := d.Claim(ctx, tx, keys)
	if err == nil {
		return fresh, nil
	}
	if ctx.Err() != nil {
		return nil, errors.Wrap(err, "deduplicate")
	}
	l.p.Metrics.DedupErrors.WithLabelValues(d.Backend()).Inc()
	// Only a failure outside Postgres leaves the transaction usable.
	if errors.Is(err, storage.ErrUnavailable) && cfg.Dedup.OnError != DedupOnErrorPause {
		l.logger.Warn("listener: dedup backend failed; enqueueing the batch without deduplication (on_error: process)",
			slog.String("backend", d.Backend()), slog.Int("events", len(events)), slog.String("error", err.Error()))
		return nil, nil
	}
	return nil, errors.WithHint(errors.Wrapf(err, "deduplicate (%s backend)", d.Backend()),
		"the batch is read again later; with dedup.on_error: process a Redis failure is bypassed instead")
}

// skipReasonLabel keeps the metric's label set small.
func skipReasonLabel(reason string) string {
	switch {
	case len(reason) >= 24 && reason[:24] == "unknown modification_typ":
		return "unknown_kind"
	default:
		return "bad_payload"
	}
}

func (l *Listener) setRole(ctx context.Context, r Role) {
	l.mu.Lock()
	changed := l.role != r
	l.role = r
	if r == RoleLeader && changed {
		l.leaderFrom = time.Now()
	}
	l.mu.Unlock()
	if r == RoleLeader {
		l.p.Metrics.IsLeader.Set(1)
		if changed {
			l.p.Metrics.LeaderChanges.Inc()
		}
	} else {
		l.p.Metrics.IsLeader.Set(0)
	}
	if changed {
		l.heartbeat(ctx)
	}
}

func (l *Listener) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(l.p.HeartbeatInterval)
	defer t.Stop()
	l.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.heartbeat(ctx)
		}
	}
}

func (l *Listener) heartbeat(ctx context.Context) {
	l.mu.Lock()
	role, since := l.role, l.leaderFrom
	l.mu.Unlock()
	host, _ := os.Hostname()
	params := dbsqlc.ListenerHeartbeatParams{
		ID:         l.p.InstanceID,
		ListenerID: l.p.Config.Listener.ID,
		Host:       &host,
		Pid:        ptr(int32(os.Getpid())),
		HttpAddr:   &l.p.HTTPAddr,
		Role:       string(role),
		Version:    &l.p.Version,
		StartedAt:  ptr(l.startedAt),
	}
	if role == RoleLeader {
		params.LeaderSince = ptr(since)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := dbsqlc.New(l.p.Pool).ListenerHeartbeat(hctx, params); err != nil && ctx.Err() == nil {
		l.logger.Warn("listener: heartbeat failed", slog.String("error", err.Error()))
	}
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func ptr[T any](v T) *T { return &v }
