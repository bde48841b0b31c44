package listener

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/jackc/pgx/v5"
)

// processBatch runs one batch: a peek when the last look found the log
// drained, else the enqueue transaction. more reports that the batch was
// cut by its limits: the next one can be read at once.
func (l *Listener) processBatch(ctx context.Context) (more bool, err error) {
	a := l.active.Load()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Listener.BatchTimeout)
	defer cancel()
	if l.drained != nil {
		// Idle wakes (polls, notifications for rows still above the horizon)
		// cost one read-only query instead of a locking transaction. Another
		// leader can only have moved the checkpoint forward, so a stale
		// position errs towards looking.
		ready, held, err := l.log.Peek(ctx, l.p.Pool, *l.drained)
		if err != nil {
			return false, err
		}
		l.p.Metrics.HorizonHeldEvents.Set(float64(held))
		l.held = held > 0
		if !ready {
			l.recordBatch(0, false)
			return false, nil
		}
		l.drained = nil
	}
	start := time.Now()
	b, err := l.enqueueTx(ctx, a)
	if err != nil {
		return false, err
	}
	if !b.more {
		// Caught up, or stopped by the horizon: the next look peeks (and
		// counts what the horizon holds).
		l.drained, l.held = &b.last, true
	}
	if b.rows > 0 {
		l.observe(b, time.Since(start))
		l.audit(b)
	}
	l.recordBatch(b.rows, b.more)
	return b.more, nil
}

// limits are the next batch's: the configured ones, halved once per
// failure in a row (never below one row).
func (l *Listener) limits() changelog.Limits {
	c := l.active.Load().cfg.Listener
	return changelog.Limits{
		Rows:          max(1, c.BatchSize>>l.shrink),
		Bytes:         max(1, c.BatchBytes>>l.shrink),
		MaxEventBytes: c.MaxEventBytes,
	}
}

// batch is what one enqueue transaction did.
type batch struct {
	rows       int                 // change-log rows consumed, skipped ones included
	more       bool                // cut by its limits: more rows wait
	matched    int                 // events that matched an observer
	dedupSkips int                 // matched events not enqueued as duplicates
	dups       []Job               // the deliveries of those events (kept for the audit trail only)
	jobs       []Job               // deliveries enqueued
	skipped    []changelog.Skipped // rows recorded in observer_skipped_events
	last       changelog.Position  // the new checkpoint (the old one when rows is 0)
}

// enqueueTx is the one transaction the delivery guarantee rests on: lock
// the checkpoint row (fencing any other would-be leader), read the next
// batch below the committed horizon, enqueue the deliveries of the matched
// events, advance the checkpoint, commit.
func (l *Listener) enqueueTx(ctx context.Context, a *activeConfig) (*batch, error) {
	tx, err := l.p.Pool.Begin(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "begin enqueue transaction")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The commit need not wait for its WAL flush: a crash can lose only a
	// whole enqueue transaction (jobs and checkpoint together, never one
	// without the other), and the batch is then read again. Deliveries stay
	// at least once; the batch skips a disk flush on the hot path.
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return nil, errors.Wrap(err, "set synchronous_commit")
	}
	q := dbsqlc.New(tx)
	listenerID := a.cfg.Listener.ID
	cp, err := q.CheckpointLock(ctx, listenerID)
	if err != nil {
		return nil, errors.Wrap(err, "lock checkpoint")
	}
	pos := changelog.Position{TxID: uint64(cp.Txid), Seq: cp.EventID}
	read, err := l.log.ReadBatch(ctx, tx, pos, l.limits())
	if err != nil {
		return nil, err
	}
	b := &batch{rows: read.Rows, more: read.More, skipped: read.Skipped, last: read.Last}
	if b.rows == 0 {
		return b, nil
	}
	if err := l.jobs(ctx, tx, a, read.Events, b); err != nil {
		return nil, err
	}
	if len(b.jobs) > 0 {
		if err := l.p.Enqueuer.EnqueueTx(ctx, tx, b.jobs); err != nil {
			return nil, errors.Wrap(err, "enqueue jobs")
		}
	}
	if err := l.recordSkipped(ctx, q, listenerID, b.skipped); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.batches++
	batchNo := l.batches
	l.mu.Unlock()
	if l.p.BeforeCommit != nil {
		if err := l.p.BeforeCommit(ctx, batchNo); err != nil {
			return nil, errors.Wrap(err, "before commit")
		}
	}
	if _, err := q.CheckpointAdvance(ctx, dbsqlc.CheckpointAdvanceParams{
		ListenerID: listenerID, Txid: int64(b.last.TxID), EventID: b.last.Seq, EventsProcessedDelta: int64(b.rows),
	}); err != nil {
		return nil, errors.Wrap(err, "advance checkpoint")
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, errors.Wrap(err, "commit enqueue transaction")
	}
	return b, nil
}

// jobs matches events against the configuration in force, drops the
// duplicates (dedup, claimed in tx) and fills b's jobs.
func (l *Listener) jobs(ctx context.Context, tx pgx.Tx, a *activeConfig, events []*observers.Event, b *batch) error {
	var matchedEvents []*observers.Event
	var matches [][]observers.Match
	for _, ev := range events {
		if err := ctx.Err(); err != nil { // matching big events must not outlive the batch
			return errors.Wrap(err, "match changes")
		}
		ms := a.cfg.Match(ev, func(o *observers.Observer, err error) {
			l.p.Metrics.ConditionErrors.WithLabelValues(o.Name).Inc()
			l.logger.Warn("listener: condition failed; treated as no match",
				slog.String("observer", o.Name), slog.String("event_id", ev.ID), slog.Int64("event_seq", ev.Seq),
				slog.String("entity_type", ev.EntityType), slog.String("error", err.Error()))
		})
		if len(ms) > 0 {
			matchedEvents = append(matchedEvents, ev)
			matches = append(matches, ms)
		}
	}
	b.matched = len(matchedEvents)
	fresh, err := l.dedup(ctx, tx, a.cfg, matchedEvents)
	if err != nil {
		return err
	}
	for i, ev := range matchedEvents {
		if fresh != nil && !fresh[i] {
			b.dedupSkips++
			l.logger.Debug("listener: duplicate change skipped", slog.String("event_id", ev.ID), slog.Int64("event_seq", ev.Seq),
				slog.String("entity_type", ev.EntityType), slog.String("entity_id", ev.EntityID))
			if l.p.Audit != nil {
				for _, m := range matches[i] {
					b.dups = append(b.dups, Job{Event: ev, Observer: m.Observer, ActionIndex: m.ActionIndex})
				}
			}
			continue
		}
		for _, m := range matches[i] {
			b.jobs = append(b.jobs, Job{Table: l.log.Table(), Event: ev, Observer: m.Observer, ActionIndex: m.ActionIndex, ConfigVersion: a.version})
		}
	}
	return nil
}

// recordSkipped records the rows that could not be turned into events, in
// the enqueue transaction.
func (l *Listener) recordSkipped(ctx context.Context, q *dbsqlc.Queries, listenerID string, skipped []changelog.Skipped) error {
	if len(skipped) == 0 {
		return nil
	}
	pks := make([]int64, len(skipped))
	reasons := make([]string, len(skipped))
	for i, s := range skipped {
		pks[i], reasons[i] = s.Seq, s.Reason
		l.logger.Warn("listener: change skipped", slog.Int64("event_seq", s.Seq), slog.String("reason", s.Reason))
	}
	if _, err := q.SkippedEventInsertMany(ctx, dbsqlc.SkippedEventInsertManyParams{
		ListenerID: listenerID, ChangePks: pks, Reasons: reasons,
	}); err != nil {
		return errors.Wrap(err, "record skipped changes")
	}
	return nil
}

// observe counts a committed batch.
func (l *Listener) observe(b *batch, took time.Duration) {
	m := l.p.Metrics
	m.Batches.Inc()
	m.BatchDuration.Observe(took.Seconds())
	m.EventsProcessed.Add(float64(b.rows))
	m.EventsMatched.Add(float64(b.matched))
	m.DedupSkips.Add(float64(b.dedupSkips))
	for _, s := range b.skipped {
		m.EventsSkipped.WithLabelValues(skipReasonLabel(s.Reason)).Inc()
	}
	for _, j := range b.jobs {
		m.JobsEnqueued.WithLabelValues(j.ActionType()).Inc()
	}
	m.CheckpointSeq.Set(float64(b.last.Seq))
	m.CheckpointTxID.Set(float64(b.last.TxID))
	l.logger.Debug("listener: batch committed", slog.Int("rows", b.rows), slog.Int("jobs", len(b.jobs)),
		slog.Int64("checkpoint_seq", b.last.Seq), slog.Duration("took", took))
}

// audit records a committed batch's skipped changes and deduplicated
// deliveries, when the audit trail is on.
func (l *Listener) audit(b *batch) {
	a := l.p.Audit
	if a == nil {
		return
	}
	for _, s := range b.skipped {
		if s.Event != nil {
			a.Record(observers.EventRecord(s.Event, storage.AuditSkipped, s.Reason))
		}
	}
	for _, j := range b.dups {
		a.Record(observers.OutcomeRecord(j.Event, j.Observer, j.ActionIndex, 0, 0, storage.AuditDeduplicated, "", 0))
	}
}

// dedup claims the content keys of the matched events in tx and reports
// which are fresh; nil means every event is (dedup off, or the backend failed
// under on_error: process). Keys are scoped by listener id.
func (l *Listener) dedup(ctx context.Context, tx pgx.Tx, cfg *observers.Config, events []*observers.Event) ([]bool, error) {
	d := l.p.Dedup
	if d == nil || !cfg.Dedup.Enabled || len(events) == 0 {
		return nil, nil
	}
	keys := make([]string, len(events))
	for i, ev := range events {
		keys[i] = cfg.Listener.ID + "/" + observers.DedupKey(ev)
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
	if errors.Is(err, storage.ErrUnavailable) && cfg.Dedup.OnError != observers.DedupOnErrorPause {
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
	case strings.HasPrefix(reason, changelog.ReasonTooLarge):
		return "too_large"
	case len(reason) >= 24 && reason[:24] == "unknown modification_typ":
		return "unknown_kind"
	default:
		return "bad_payload"
	}
}
