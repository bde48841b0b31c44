package retention

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// Defaults of Params.
const (
	// BatchRowsDefault is the most rows one statement deletes.
	BatchRowsDefault = 10_000
	// BatchTimeDefault is how long one deleting statement should take.
	// Each is a transaction, and while it runs it holds the change log's
	// committed horizon back: the listener reads nothing written after it
	// began until it commits. So the rows per statement adapt to keep each
	// statement about this short (between batchRowsMin and BatchRows), and
	// a live event waits for retention at most about that long.
	BatchTimeDefault = 10 * time.Millisecond
	// PauseDefault is the least pause after a batch that deleted rows; the
	// pause is at least as long as the batch took, so retention holds a
	// connection (and the horizon) at most half the time.
	PauseDefault = 20 * time.Millisecond
	// RunBudget bounds one periodic run (Runner.Run), below
	// river.RetentionRunTimeout; the next run goes on where it stopped.
	RunBudget = 45 * time.Second
	// statementTimeout bounds one batch's statement.
	statementTimeout = 30 * time.Second
)

// DB is what retention needs from the database: a pool.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Params configures a Runner.
type Params struct {
	DB DB // required
	// Config is the retention: block, defaults applied; SetConfig replaces
	// it after a reload.
	Config observers.RetentionConfig
	// ChangeLog is listener.table; default observers.ListenerTableDefault.
	ChangeLog string
	// Pins keep change-log rows; default DefaultPins(). A caller adding a
	// pin passes DefaultPins() and its own.
	Pins []Pin
	// BatchRows bounds the rows one statement deletes; default
	// BatchRowsDefault.
	BatchRows int
	// BatchTime is how long one deleting statement should take; default
	// BatchTimeDefault.
	BatchTime time.Duration
	// Pause is the least pause after a batch; default PauseDefault.
	Pause   time.Duration
	Metrics *Metrics     // default NewMetrics(nil)
	Logger  *slog.Logger // default discard
	// Now is the clock the periods count from; default time.Now.
	Now func() time.Time
}

// Runner deletes what the retention: block allows. Safe for concurrent use.
type Runner struct {
	p   Params
	log *changelog.ChangeLog
	mu  sync.Mutex
	cfg observers.RetentionConfig
}

// New checks p and returns a Runner.
func New(p Params) (*Runner, error) {
	if p.DB == nil {
		return nil, errors.New("retention: Params.DB is required")
	}
	p.ChangeLog = cmp.Or(p.ChangeLog, observers.ListenerTableDefault)
	if p.Pins == nil {
		p.Pins = DefaultPins()
	}
	p.BatchRows = cmp.Or(p.BatchRows, BatchRowsDefault)
	p.BatchTime = cmp.Or(p.BatchTime, BatchTimeDefault)
	p.Pause = cmp.Or(p.Pause, PauseDefault)
	if p.Metrics == nil {
		p.Metrics = NewMetrics(nil)
	}
	p.Logger = cmp.Or(p.Logger, slog.New(slog.DiscardHandler))
	if p.Now == nil {
		p.Now = time.Now
	}
	cl, err := changelog.New(p.ChangeLog)
	if err != nil {
		return nil, err
	}
	return &Runner{p: p, log: cl, cfg: p.Config.WithDefaults()}, nil
}

// Metrics are the runner's metrics.
func (r *Runner) Metrics() *Metrics { return r.p.Metrics }

// SetConfig puts a reloaded retention: block in force from the next run.
func (r *Runner) SetConfig(c observers.RetentionConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg = c.WithDefaults()
}

func (r *Runner) config() observers.RetentionConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// Options are one Apply's.
type Options struct {
	// DryRun counts what would be deleted and deletes nothing.
	DryRun bool
	// Budget bounds the run; 0: until done. A table cut short reports
	// Complete false.
	Budget time.Duration
	// Progress, when set, is called after each batch with the rows it
	// deleted (or would delete).
	Progress func(table string, rows int64)
}

// Report is what one Apply did.
type Report struct {
	DryRun bool          `json:"dry_run"`
	Tables []TableReport `json:"tables"`
}

// TableReport is one table's part of a Report.
type TableReport struct {
	Table  string `json:"table"`  // change_log, completed_jobs, dead_letters, skipped_events, audit, search_tombstones
	Period string `json:"period"` // 30d, or off
	// Before is the cutoff: rows older than it go. Nil when off.
	Before *time.Time `json:"before,omitempty"`
	// Rows were deleted (or, in a dry run, would be).
	Rows int64 `json:"rows"`
	// Pinned counts change-log rows old enough and passed by every
	// checkpoint that a pin kept (an unfinished delivery refers to them).
	Pinned int64 `json:"pinned,omitempty"`
	// HeldBy is, for the change log, the listener group whose checkpoint
	// bounds what may go (the furthest behind), and Checkpoint its
	// position; empty when no group reads the table (nothing goes).
	HeldBy     string      `json:"held_by,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Complete is false when the budget ended the table's work early.
	Complete bool          `json:"complete"`
	Elapsed  time.Duration `json:"-"`
}

// Checkpoint is a listener group's position in the change log.
type Checkpoint struct {
	TxID string `json:"txid"`
	PK   int64  `json:"pk"`
}

// Run is one periodic run (the River job): Apply within RunBudget, logged.
func (r *Runner) Run(ctx context.Context) error {
	rep, err := r.Apply(ctx, Options{Budget: RunBudget})
	for _, t := range rep.Tables {
		if t.Rows == 0 && t.Complete {
			continue
		}
		attrs := []any{slog.String("table", t.Table), slog.Int64("rows", t.Rows), slog.String("period", t.Period),
			slog.Bool("complete", t.Complete), slog.Duration("elapsed", t.Elapsed)}
		if t.Table == observers.RetentionChangeLog {
			attrs = append(attrs, slog.Int64("pinned", t.Pinned), slog.String("held_by", t.HeldBy))
		}
		r.p.Logger.InfoContext(ctx, "retention: deleted old rows", attrs...)
	}
	return err
}

// Apply deletes (or counts) each table's rows older than its period, the
// jobs first, then the change log, the audit trail and the tombstones.
func (r *Runner) Apply(ctx context.Context, o Options) (Report, error) {
	rep := Report{DryRun: o.DryRun}
	start := time.Now()
	w := &work{r: r, o: o, deadline: time.Time{}}
	if o.Budget > 0 {
		w.deadline = start.Add(o.Budget)
	}
	for _, p := range r.config().Periods() {
		t := TableReport{Table: p.Table, Period: observers.FormatRetention(p.Period), Complete: true}
		if p.Period > 0 {
			before := r.p.Now().Add(-p.Period)
			t.Before = &before
			tstart := time.Now()
			err := w.table(ctx, &t)
			t.Elapsed = time.Since(tstart)
			if err != nil {
				rep.Tables = append(rep.Tables, t)
				return rep, errors.Wrapf(err, "retention: %s", p.Table)
			}
		}
		rep.Tables = append(rep.Tables, t)
	}
	return rep, nil
}

// work is one Apply in progress.
type work struct {
	r        *Runner
	o        Options
	deadline time.Time
}

func (w *work) table(ctx context.Context, t *TableReport) error {
	switch t.Table {
	case observers.RetentionCompletedJobs:
		return w.jobs(ctx, t, obsriver.CompletedJobs)
	case observers.RetentionDeadLetters:
		return w.jobs(ctx, t, obsriver.DeadLetterJobs)
	case observers.RetentionSkippedEvents:
		return w.rows(ctx, t, skippedEvents)
	case observers.RetentionAudit:
		return w.rows(ctx, t, auditRecords)
	case observers.RetentionSearchTombstones:
		return w.rows(ctx, t, searchTombstones)
	case observers.RetentionChangeLog:
		return w.changeLog(ctx, t) // changelog.go
	}
	return errors.AssertionFailedf("unknown retention table %q", t.Table)
}

// outOfTime reports whether the budget is spent.
func (w *work) outOfTime() bool { return !w.deadline.IsZero() && !time.Now().Before(w.deadline) }

// done records n rows of one batch that took took, and pauses before the
// next one unless last.
func (w *work) done(ctx context.Context, t *TableReport, n int64, took time.Duration, last bool) error {
	t.Rows += n
	if !w.o.DryRun && n > 0 {
		w.r.p.Metrics.Deleted.WithLabelValues(t.Table).Add(float64(n))
	}
	if w.o.Progress != nil {
		w.o.Progress(t.Table, n)
	}
	if last || w.o.DryRun || n == 0 {
		return nil
	}
	timer := time.NewTimer(max(w.r.p.Pause, took))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// batchFunc deletes (or counts) one batch of at most limit rows and says
// whether it was the last.
type batchFunc func(ctx context.Context, limit int) (rows int64, last bool, err error)

// Rows of the first deleting statement of a table, and the fewest of any.
const (
	batchRowsStart = 1_000
	batchRowsMin   = 100
)

// batches runs one batch at a time, each with its own timeout, until the
// last or the budget is spent. A deleting batch's rows adapt to BatchTime;
// a dry run only reads (it holds no horizon) and reads BatchRows at once.
func (w *work) batches(ctx context.Context, t *TableReport, batch batchFunc) error {
	p := w.r.p
	rows := min(batchRowsStart, p.BatchRows)
	if w.o.DryRun {
		rows = p.BatchRows
	}
	for {
		if w.outOfTime() {
			t.Complete = false
			return nil
		}
		start := time.Now()
		qctx, cancel := context.WithTimeout(ctx, statementTimeout)
		n, last, err := batch(qctx, rows)
		cancel()
		if err != nil {
			return err
		}
		took := time.Since(start)
		if !w.o.DryRun {
			rows = nextRows(rows, took, p.BatchTime, p.BatchRows)
		}
		if err := w.done(ctx, t, n, took, last); err != nil || last {
			return err
		}
	}
}

// nextRows scales rows towards a statement of target (at most doubling or
// halving at once), within [batchRowsMin, most].
func nextRows(rows int, took, target time.Duration, most int) int {
	f := min(max(float64(target)/float64(max(took, time.Microsecond)), 0.5), 2)
	return min(max(int(float64(rows)*f), batchRowsMin), most)
}

// upTo is a batchFunc that is last when it deletes fewer than limit rows.
func upTo(del func(ctx context.Context, limit int) (int64, error)) batchFunc {
	return func(ctx context.Context, limit int) (int64, bool, error) {
		n, err := del(ctx, limit)
		return n, n < int64(limit), err
	}
}

func (w *work) jobs(ctx context.Context, t *TableReport, c obsriver.FinishedJobs) error {
	db := w.r.p.DB
	if w.o.DryRun {
		qctx, cancel := context.WithTimeout(ctx, statementTimeout)
		defer cancel()
		n, err := obsriver.CountFinishedJobs(qctx, db, c, *t.Before)
		if err == nil {
			err = w.done(ctx, t, n, 0, true)
		}
		return err
	}
	return w.batches(ctx, t, upTo(func(ctx context.Context, limit int) (int64, error) {
		return obsriver.DeleteFinishedJobs(ctx, db, c, *t.Before, limit)
	}))
}

// rowsOf is a table whose old rows count and delete by age alone. Its
// functions take the queries first, as sqlc's method expressions do.
type rowsOf struct {
	what  string // for errors: "skipped events"
	count func(q *dbsqlc.Queries, ctx context.Context, before time.Time) (int64, error)
	del   func(q *dbsqlc.Queries, ctx context.Context, before time.Time, limit int32) (int64, error)
}

var (
	skippedEvents = rowsOf{"skipped events",
		func(q *dbsqlc.Queries, ctx context.Context, before time.Time) (int64, error) {
			return q.RetentionCountSkippedEvents(ctx, &before)
		},
		func(q *dbsqlc.Queries, ctx context.Context, before time.Time, limit int32) (int64, error) {
			return q.RetentionDeleteSkippedEvents(ctx, dbsqlc.RetentionDeleteSkippedEventsParams{Before: &before, MaxRows: limit})
		}}
	auditRecords = rowsOf{"audit records", (*dbsqlc.Queries).RetentionCountAudit,
		func(q *dbsqlc.Queries, ctx context.Context, before time.Time, limit int32) (int64, error) {
			return q.RetentionDeleteAudit(ctx, dbsqlc.RetentionDeleteAuditParams{Before: before, MaxRows: limit})
		}}
	searchTombstones = rowsOf{"search document tombstones", (*dbsqlc.Queries).RetentionCountSearchTombstones,
		func(q *dbsqlc.Queries, ctx context.Context, before time.Time, limit int32) (int64, error) {
			return q.RetentionDeleteSearchTombstones(ctx, dbsqlc.RetentionDeleteSearchTombstonesParams{Before: before, MaxRows: limit})
		}}
)

// rows deletes (or, in a dry run, counts) t's rows older than t.Before.
func (w *work) rows(ctx context.Context, t *TableReport, r rowsOf) error {
	q := dbsqlc.New(w.r.p.DB)
	if w.o.DryRun {
		qctx, cancel := context.WithTimeout(ctx, statementTimeout)
		defer cancel()
		n, err := r.count(q, qctx, *t.Before)
		if err == nil {
			err = w.done(ctx, t, n, 0, true)
		}
		return errors.Wrapf(err, "count %s", r.what)
	}
	return w.batches(ctx, t, upTo(func(ctx context.Context, limit int) (int64, error) {
		n, err := r.del(q, ctx, *t.Before, int32(limit))
		return n, errors.Wrapf(err, "delete %s", r.what)
	}))
}
