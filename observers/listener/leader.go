package listener

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

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
	q := dbsqlc.New(l.p.Pool)
	if err := q.CheckpointEnsure(ctx, l.p.Config.Listener.ID); err != nil {
		return errors.Wrap(err, "listener: ensure checkpoint row")
	}
	// Retention deletes a change-log row only once every group reading its
	// table has passed it: say which table this group reads.
	if err := q.CheckpointSetChangeLog(ctx, dbsqlc.CheckpointSetChangeLogParams{
		ChangeLog: l.log.Quoted(), ListenerID: l.p.Config.Listener.ID,
	}); err != nil {
		return errors.Wrap(err, "listener: record the checkpoint's change log")
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
	l.drained, l.held, l.shrink = nil, false, 0
	l.recordProgress()
	for {
		cfg := l.active.Load().cfg.Listener
		for {
			more, err := l.processBatch(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				l.recordFailure(err)
				l.held = false // retry after the poll interval, not at the held-horizon pace
				break
			}
			if !more {
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
		l.p.Metrics.Leader.Set(1)
		if changed {
			l.p.Metrics.LeaderChanges.Inc()
		}
	} else {
		l.p.Metrics.IsLeader.Set(0)
		l.p.Metrics.Leader.Set(0)
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
	// One heartbeat at a time, reading the role inside: a periodic beat
	// that read "standby" must not land after the beat of becoming leader.
	l.hbMu.Lock()
	defer l.hbMu.Unlock()
	l.mu.Lock()
	role, since, h := l.role, l.leaderFrom, l.health
	l.mu.Unlock()
	host, _ := os.Hostname()
	var batchErr *string
	if h.lastErr != "" {
		batchErr = ptr(observers.Shorten(h.lastErr, 1000))
	}
	params := dbsqlc.ListenerHeartbeatParams{
		BatchFailures: int32(h.failures), BatchError: batchErr, ProgressAt: ptr(h.progressAt),
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
	if l.p.Queues != nil {
		params.Queues, _ = json.Marshal(l.p.Queues()) // a map of ints always marshals
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

// recordFailure counts a failed batch and halves the next one, so a batch
// that failed for its size (a timeout decoding big rows) is read again
// smaller, down to one row.
func (l *Listener) recordFailure(err error) {
	l.p.Metrics.BatchErrors.Inc()
	if l.active.Load().cfg.Listener.BatchSize>>l.shrink > 1 {
		l.shrink++
	}
	l.mu.Lock()
	l.health.failures++
	l.health.lastErr = err.Error()
	l.health.waiting = true
	failures := l.health.failures
	l.mu.Unlock()
	l.logger.Error("listener: batch failed; it will be read again, smaller",
		slog.String("error", err.Error()), slog.Int("failures_in_a_row", failures),
		slog.Int("next_batch_rows", l.limits().Rows))
}

// recordBatch notes a committed batch: the failures in a row end, and the
// next batch grows back towards the configured size.
func (l *Listener) recordBatch(rows int, more bool) {
	if l.shrink > 0 {
		l.shrink--
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.health.failures, l.health.lastErr, l.health.waiting = 0, "", more
	if rows > 0 {
		l.health.progressAt = time.Now()
	}
}

// recordProgress starts the stall clock (leadership began).
func (l *Listener) recordProgress() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.health = health{progressAt: time.Now()}
}

// Health reports why this instance, while it leads, does not move the
// checkpoint: UnhealthyAfterFailures batches failed in a row, or nothing
// consumed for StallAfterDefault while changes wait. nil while it leads and
// advances, and while it stands by.
func (l *Listener) Health() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.role != RoleLeader {
		return nil
	}
	h := l.health
	if h.failures >= UnhealthyAfterFailures {
		return errors.Newf("the listener failed %d batches in a row; last error: %s", h.failures, h.lastErr)
	}
	if since := time.Since(h.progressAt); h.waiting && since > StallAfterDefault {
		return errors.Newf("the listener has consumed no change for %s while changes wait", since.Round(time.Second))
	}
	return nil
}
