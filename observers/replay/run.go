package replay

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// BatchTimeoutDefault bounds one batch: its read may pass over many rows
// the selection leaves out.
const BatchTimeoutDefault = 2 * time.Minute

// Params configure a Runner.
type Params struct {
	// Pool is the database of the change log, the checkpoints and the jobs;
	// required.
	Pool *pgxpool.Pool
	// Config is the configuration the changes run through, stored as
	// ConfigVersion, which the jobs name; required.
	Config        *observers.Config
	ConfigVersion int64
	// Enqueuer inserts the jobs in each batch's transaction; required but
	// by DryRun.
	Enqueuer listener.Enqueuer
	// BatchSize is the changes read per batch; default the configuration's
	// listener.batch_size. A batch is also bounded by listener.batch_bytes.
	BatchSize int
	// BatchTimeout bounds one batch; default BatchTimeoutDefault.
	BatchTimeout time.Duration
	// Progress, when set, is told the rows of each batch once it committed.
	Progress func(rows int)
	// BeforeCommit, when set, runs in each batch's transaction after its
	// jobs are inserted and before it commits (fault injection); batch
	// counts from 1 in each Run.
	BeforeCommit func(ctx context.Context, batch int) error
}

// Runner creates, runs and dry-runs replays with one configuration.
type Runner struct {
	p   Params
	log *changelog.ChangeLog
	lim changelog.Limits
}

// New checks p and returns a Runner.
func New(p Params) (*Runner, error) {
	if p.Pool == nil || p.Config == nil {
		return nil, errors.New("replay: Params.Pool and Params.Config are required")
	}
	lc := p.Config.Listener.WithDefaults()
	log, err := changelog.New(lc.Table)
	if err != nil {
		return nil, err
	}
	p.BatchTimeout = cmp.Or(p.BatchTimeout, BatchTimeoutDefault)
	lim := changelog.Limits{Rows: cmp.Or(p.BatchSize, lc.BatchSize), Bytes: lc.BatchBytes, MaxEventBytes: lc.MaxEventBytes}
	return &Runner{p: p, log: log, lim: lim}, nil
}

// CheckObservers fails, with a hint naming the observers there are, when
// a name is not an observer of cfg.
func CheckObservers(cfg *observers.Config, names []string) error {
	have := make([]string, len(cfg.Observers))
	for i, o := range cfg.Observers {
		have[i] = o.Name
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return errors.WithHint(errors.Newf("--observer %q is not an observer of the configuration", n),
				"the observers are: "+strings.Join(have, ", "))
		}
	}
	return nil
}

// bound returns the listener group's checkpoint: the changes it has passed
// are those at or before it.
func (r *Runner) bound(ctx context.Context, listenerID string) (changelog.Position, error) {
	q := dbsqlc.New(r.p.Pool)
	cp, err := q.CheckpointGet(ctx, listenerID)
	if errors.Is(err, pgx.ErrNoRows) {
		ids, _ := q.StatusListenerIDs(ctx)
		hint := "the listener has never run for this group, so it has passed no change to replay"
		if len(ids) > 0 {
			hint += "; the groups with a checkpoint are: " + strings.Join(ids, ", ") + " (choose with --listener)"
		}
		return changelog.Position{}, errors.WithHint(errors.Mark(errors.Newf("listener group %q has no checkpoint", listenerID), storage.ErrNotFound), hint)
	}
	if err != nil {
		return changelog.Position{}, errors.Wrapf(err, "read the checkpoint of listener group %q", listenerID)
	}
	return changelog.Position{TxID: uint64(cp.Txid), Seq: cp.EventID}, nil
}

// Create starts a replay of req's selection sel, below the listener's
// checkpoint now. When an unfinished replay of the same request exists
// (another process created it meanwhile), it returns that one and created
// false.
func (r *Runner) Create(ctx context.Context, req Request, sel Selection) (rep *Replay, created bool, err error) {
	bound, err := r.bound(ctx, req.ListenerID)
	if err != nil {
		return nil, false, err
	}
	n, err := r.log.CountRange(ctx, r.p.Pool, sel.Range(bound))
	if err != nil {
		return nil, false, err
	}
	start := bound // nothing selected: the first batch reads nothing and finishes
	if n.Start != nil {
		start = *n.Start
	}
	params, err := json.Marshal(Parameters{Selection: sel, Request: req, Beyond: n.Beyond})
	if err != nil {
		return nil, false, errors.Wrap(err, "encode replay parameters")
	}
	counts, _ := json.Marshal(Counts{ByAction: []ActionCount{}})
	id, err := dbsqlc.New(r.p.Pool).ReplayCreate(ctx, dbsqlc.ReplayCreateParams{
		ListenerID: req.ListenerID, Key: req.Key(), Parameters: params, ConfigVersion: r.p.ConfigVersion,
		BoundTxid: int64(bound.TxID), BoundPk: bound.Seq, PositionTxid: int64(start.TxID), PositionPk: start.Seq,
		Total: n.Rows, Counts: counts,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		rep, err := FindUnfinished(ctx, r.p.Pool, req)
		if err == nil && rep == nil {
			err = errors.New("an unfinished replay of the same request ended meanwhile")
		}
		return rep, false, err
	}
	if err != nil {
		return nil, false, errors.Wrap(err, "record the replay")
	}
	rep, err = Get(ctx, r.p.Pool, id)
	return rep, true, err
}

// Run reads rep's changes from its position to its bound, batch by batch,
// and enqueues the deliveries of those that match. It returns nil once the
// replay finished, and ctx's error, wrapped, when ctx ended first: the
// batches committed until then stay, and running rep again resumes after
// them. rep is updated after each batch.
func (r *Runner) Run(ctx context.Context, rep *Replay) error {
	if r.p.Enqueuer == nil {
		return errors.New("replay: Params.Enqueuer is required to run a replay")
	}
	if rep.ConfigVersion != r.p.ConfigVersion {
		return errors.Newf("replay %d runs configuration version %d, not %d", rep.ID, rep.ConfigVersion, r.p.ConfigVersion)
	}
	unlock, err := r.lock(ctx, rep.ID)
	if err != nil {
		return err
	}
	defer unlock()
	want := selected(rep.Parameters.Observers)
	for n := 1; rep.State == StateRunning; n++ {
		if err := ctx.Err(); err != nil {
			return errors.Wrapf(err, "replay %d interrupted", rep.ID)
		}
		rows, err := r.batch(ctx, rep, want, n)
		if err != nil {
			if ctx.Err() != nil {
				return errors.Wrapf(ctx.Err(), "replay %d interrupted", rep.ID)
			}
			return errors.Wrapf(err, "replay %d", rep.ID)
		}
		if r.p.Progress != nil && rows > 0 {
			r.p.Progress(rows)
		}
	}
	if rep.State == StateCancelled {
		return errors.WithHint(errors.Newf("replay %d was cancelled", rep.ID), "start a new one with the same command")
	}
	return nil
}

// lock takes the replay's session advisory lock on a connection of its own,
// so that two processes never run one replay at once and --list sees that
// it runs.
func (r *Runner) lock(ctx context.Context, id int64) (unlock func(), err error) {
	conn, err := r.p.Pool.Acquire(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "acquire a connection for the replay's lock")
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1::int, $2::int)`, LockClass, int32(id)).Scan(&ok); err != nil {
		conn.Release()
		return nil, errors.Wrapf(err, "lock replay %d", id)
	}
	if !ok {
		conn.Release()
		return nil, errors.WithHint(errors.Newf("replay %d is being run by another process", id),
			"wait for it to finish (`fraiseql-observers replay --list` shows it as running), or stop that process")
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1::int, $2::int)`, LockClass, int32(id)); err != nil {
			_ = conn.Conn().Close(uctx) // closing the session releases the lock
		}
		conn.Release()
	}, nil
}

func selected(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// batch runs one batch in its own transaction: lock the replay's row, read
// the next changes after its position, enqueue the deliveries of those
// that match, move the position (finished when nothing more is left),
// commit. It returns the rows read.
func (r *Runner) batch(ctx context.Context, rep *Replay, want map[string]bool, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.BatchTimeout)
	defer cancel()
	tx, err := r.p.Pool.Begin(ctx)
	if err != nil {
		return 0, errors.Wrap(err, "begin batch")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// As in the listener's transaction: a crash can lose only a whole batch
	// (jobs and position together), which the resumed replay reads again.
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return 0, errors.Wrap(err, "set synchronous_commit")
	}
	q := dbsqlc.New(tx)
	row, err := q.ReplayLock(ctx, rep.ID)
	if err != nil {
		return 0, errors.Wrap(err, "lock the replay's row")
	}
	cur, err := fromRow(row)
	if err != nil {
		return 0, err
	}
	if cur.State != StateRunning {
		*rep = *cur
		return 0, nil
	}
	b, err := r.log.ReadRange(ctx, tx, cur.Position.log(), cur.Parameters.Range(cur.Bound.log()), r.lim)
	if err != nil {
		return 0, err
	}
	counts := cur.Counts
	jobs, err := r.jobs(ctx, b, want, rep.ID, &counts)
	if err != nil {
		return 0, err
	}
	if len(jobs) > 0 {
		if err := r.p.Enqueuer.EnqueueTx(ctx, tx, jobs); err != nil {
			return 0, errors.Wrap(err, "enqueue jobs")
		}
	}
	if r.p.BeforeCommit != nil {
		if err := r.p.BeforeCommit(ctx, n); err != nil {
			return 0, errors.Wrap(err, "before commit")
		}
	}
	cur.State, cur.Position, cur.Counts = StateRunning, position(b.Last), counts
	if !b.More {
		cur.State = StateFinished
	}
	if err := r.advance(ctx, q, cur); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, errors.Wrap(err, "commit batch")
	}
	if cur.State == StateFinished {
		now := time.Now()
		cur.FinishedAt = &now
	}
	cur.UpdatedAt = time.Now()
	*rep = *cur
	return b.Rows, nil
}

func (r *Runner) advance(ctx context.Context, q *dbsqlc.Queries, cur *Replay) error {
	counts, err := json.Marshal(cur.Counts)
	if err != nil {
		return errors.Wrap(err, "encode replay counts")
	}
	err = q.ReplayAdvance(ctx, dbsqlc.ReplayAdvanceParams{
		ID: cur.ID, PositionTxid: cur.Position.TxID, PositionPk: cur.Position.PK, Counts: counts, State: cur.State,
	})
	return errors.Wrap(err, "move the replay's position")
}

// jobs matches the batch's events against the configuration, keeps the
// matches of the wanted observers (every one when want is nil) as jobs of
// replay replayID, and counts them into c. Deduplication is not applied:
// the operator asked again.
func (r *Runner) jobs(ctx context.Context, b changelog.Batch, want map[string]bool, replayID int64, c *Counts) ([]listener.Job, error) {
	c.EventsRead += int64(b.Rows)
	c.EventsSkipped += int64(len(b.Skipped))
	var jobs []listener.Job
	for _, ev := range b.Events {
		if err := ctx.Err(); err != nil { // matching big events must not outlive the batch
			return nil, errors.Wrap(err, "match changes")
		}
		ms := r.p.Config.Match(ev, func(o *observers.Observer, _ error) {
			if want == nil || want[o.Name] {
				c.ConditionErrors++
			}
		})
		matched := false
		for _, m := range ms {
			if want != nil && !want[m.Observer.Name] {
				continue
			}
			matched = true
			c.addDelivery(m.Observer.Name, m.ActionIndex, m.Action().Type())
			jobs = append(jobs, listener.Job{Table: r.log.Table(), Event: ev, Observer: m.Observer,
				ActionIndex: m.ActionIndex, ConfigVersion: r.p.ConfigVersion, Replay: replayID})
		}
		if matched {
			c.EventsMatched++
		}
	}
	return jobs, nil
}

// DryRunReport is what a replay of a selection would do now.
type DryRunReport struct {
	// Bound is the listener's checkpoint: the last change a replay reads.
	Bound Position `json:"bound"`
	// Total are the changes selected at or before the bound.
	Total int64 `json:"total"`
	// Beyond are the changes of the selection after the bound, which the
	// listener has not passed: a replay leaves them out.
	Beyond int64  `json:"beyond"`
	Counts Counts `json:"counts"`
}

// DryRun reads and matches the changes a replay of sel would, and counts
// what it would enqueue; it changes nothing.
func (r *Runner) DryRun(ctx context.Context, listenerID string, sel Selection) (*DryRunReport, error) {
	bound, err := r.bound(ctx, listenerID)
	if err != nil {
		return nil, err
	}
	rng := sel.Range(bound)
	n, err := r.log.CountRange(ctx, r.p.Pool, rng)
	if err != nil {
		return nil, err
	}
	out := &DryRunReport{Bound: position(bound), Total: n.Rows, Beyond: n.Beyond, Counts: Counts{ByAction: []ActionCount{}}}
	if n.Start == nil {
		return out, nil
	}
	want := selected(sel.Observers)
	for pos, more := *n.Start, true; more; {
		if err := ctx.Err(); err != nil {
			return nil, errors.Wrap(err, "dry run interrupted")
		}
		bctx, cancel := context.WithTimeout(ctx, r.p.BatchTimeout)
		b, err := r.log.ReadRange(bctx, r.p.Pool, pos, rng, r.lim)
		if err == nil {
			_, err = r.jobs(bctx, b, want, 0, &out.Counts)
		}
		cancel()
		if err != nil {
			return nil, err
		}
		if r.p.Progress != nil && b.Rows > 0 {
			r.p.Progress(b.Rows)
		}
		pos, more = b.Last, b.More
	}
	return out, nil
}
