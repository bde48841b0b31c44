package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// outboxErrorMax bounds the last_error kept with an outbox row.
const outboxErrorMax = 1000

// verdict sorts the records of a failed write by their position: those to
// try again, with why they failed, and those rejected for good. The
// others were stored.
type verdict struct {
	retry    []int
	errs     []string
	rejected []int
}

// judge reads a failed write of recs: a *storage.BulkError names the items
// that failed (those wrapping storage.ErrRejected are rejected); any other
// error fails every record. It counts the failures and logs the rejected.
func (r *Recorder) judge(recs []storage.AuditRecord, err error) verdict {
	var v verdict
	var be *storage.BulkError
	if !errors.As(err, &be) {
		text := observers.Shorten(err.Error(), outboxErrorMax)
		for i := range recs {
			v.retry, v.errs = append(v.retry, i), append(v.errs, text)
		}
		r.p.Metrics.IndexFailures.WithLabelValues(r.backend, ReasonUnavailable).Add(float64(len(recs)))
		r.writeLog.fail(r.p.Logger, "audit: the backend failed a write; its records go to the outbox and are retried",
			slog.String("backend", r.backend), slog.Int("records", len(recs)), slog.String("error", err.Error()))
		return v
	}
	r.writeLog.ok(r.p.Logger, "audit: the backend takes writes again")
	var firstRejected error
	for _, f := range be.Failed {
		if f.Index < 0 || f.Index >= len(recs) {
			continue
		}
		if errors.Is(f.Err, storage.ErrRejected) {
			v.rejected = append(v.rejected, f.Index)
			firstRejected = cmp.Or(firstRejected, f.Err)
			continue
		}
		v.retry, v.errs = append(v.retry, f.Index), append(v.errs, observers.Shorten(f.Err.Error(), outboxErrorMax))
	}
	if n := len(v.retry); n > 0 {
		r.p.Metrics.IndexFailures.WithLabelValues(r.backend, ReasonItem).Add(float64(n))
	}
	if n := len(v.rejected); n > 0 {
		r.p.Metrics.IndexFailures.WithLabelValues(r.backend, ReasonRejected).Add(float64(n))
		r.p.Logger.Warn("audit: the backend rejected records; they are dropped", slog.String("backend", r.backend),
			slog.Int("records", n), slog.String("first_id", recs[v.rejected[0]].ID), slog.String("error", firstRejected.Error()))
	}
	return v
}

// write stores batch in the backend; what the backend did not take but may
// take later goes to the outbox. It fails only when the outbox did not
// take that.
func (r *Recorder) write(ctx context.Context, batch []storage.AuditRecord) error {
	wctx, cancel := context.WithTimeout(ctx, r.p.WriteTimeout)
	err := r.p.Store.Write(wctx, batch)
	cancel()
	if err == nil {
		r.writeLog.ok(r.p.Logger, "audit: the backend takes writes again")
		return nil
	}
	v := r.judge(batch, err)
	if len(v.retry) == 0 {
		return nil
	}
	retry := make([]storage.AuditRecord, len(v.retry))
	for i, idx := range v.retry {
		retry[i] = batch[idx]
	}
	return r.toOutbox(ctx, retry, v.errs[0])
}

// toOutbox keeps recs in the outbox, first tried again after RetryBase, in
// one INSERT. A record Postgres refuses (a data exception: it cannot hold
// it) is dropped and counted as rejected.
func (r *Recorder) toOutbox(ctx context.Context, recs []storage.AuditRecord, cause string) error {
	enc := make([][]byte, 0, len(recs))
	ids := make([]string, 0, len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			r.reject(recs[i].ID, err)
			continue
		}
		enc, ids = append(enc, b), append(ids, recs[i].ID)
	}
	insert := func(enc [][]byte) error {
		ictx, cancel := context.WithTimeout(ctx, r.p.WriteTimeout)
		defer cancel()
		_, err := r.q.AuditOutboxInsert(ictx, dbsqlc.AuditOutboxInsertParams{
			Records: enc, DelaySeconds: r.p.RetryBase.Seconds(), LastError: cause,
		})
		return err
	}
	err := insert(enc)
	if !isDataError(err) {
		return errors.Wrap(err, "audit: keep records in the outbox")
	}
	for i := range enc { // one by one: drop only the records Postgres cannot hold
		if err := insert(enc[i : i+1]); isDataError(err) {
			r.reject(ids[i], err)
		} else if err != nil {
			return errors.Wrap(err, "audit: keep records in the outbox")
		}
	}
	return nil
}

// isDataError reports a Postgres data exception (class 22): the value
// itself is refused, retrying cannot help.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "22"
}

// reject counts and logs a record dropped because it cannot be kept; id
// names it (its record id, or its outbox row's).
func (r *Recorder) reject(id string, err error) {
	r.p.Metrics.IndexFailures.WithLabelValues(r.backend, ReasonRejected).Inc()
	r.p.Logger.Warn("audit: a record cannot be kept in the outbox; it is dropped", slog.String("id", id),
		slog.String("error", err.Error()))
}

// drainLoop writes the outbox's due rows until ctx ends.
func (r *Recorder) drainLoop(ctx context.Context) {
	failures := 0
	for {
		n, err := r.drainOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := r.p.DrainInterval
		switch {
		case err != nil:
			r.drainLog.fail(r.p.Logger, "audit: draining the outbox failed; retrying with a backoff",
				slog.String("backend", r.backend), slog.String("error", err.Error()))
			wait = backoff(r.p.DrainInterval, r.p.HoldRetryMax, failures)
			failures++
		case n >= r.p.BatchSize:
			wait, failures = 0, 0 // more may be due
		default:
			failures = 0
		}
		if err == nil {
			r.drainLog.ok(r.p.Logger, "audit: draining the outbox works again")
		}
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// drainOnce writes up to BatchSize due outbox rows to the backend, in one
// transaction that holds their locks: written and rejected rows are
// deleted, failed ones put back with their backoff. It returns how many
// rows it took, and the backend's error when the whole write failed.
func (r *Recorder) drainOnce(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*r.p.WriteTimeout)
	defer cancel()
	tx, err := r.p.Pool.Begin(ctx)
	if err != nil {
		return 0, errors.Wrap(err, "audit: drain the outbox")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := r.q.WithTx(tx)
	rows, err := q.AuditOutboxClaim(ctx, int32(r.p.BatchSize))
	if err != nil || len(rows) == 0 {
		return 0, errors.Wrap(err, "audit: read the outbox")
	}
	recs := make([]storage.AuditRecord, 0, len(rows))
	ids := make([]int64, 0, len(rows))
	var del []int64
	for _, row := range rows {
		var rec storage.AuditRecord
		if err := json.Unmarshal(row.Record, &rec); err != nil {
			r.reject("outbox row "+strconv.FormatInt(row.ID, 10), err)
			del = append(del, row.ID)
			continue
		}
		recs, ids = append(recs, rec), append(ids, row.ID)
	}
	var writeErr error
	retry := dbsqlc.AuditOutboxRetryParams{BaseSeconds: r.p.RetryBase.Seconds(), MaxSeconds: r.p.RetryMax.Seconds()}
	if len(recs) > 0 {
		wctx, wcancel := context.WithTimeout(ctx, r.p.WriteTimeout)
		writeErr = r.p.Store.Write(wctx, recs)
		wcancel()
	}
	if writeErr == nil {
		del = append(del, ids...)
	} else {
		v := r.judge(recs, writeErr)
		again := make([]bool, len(recs))
		for i, idx := range v.retry {
			again[idx] = true
			retry.Ids, retry.Errors = append(retry.Ids, ids[idx]), append(retry.Errors, v.errs[i])
		}
		for i := range recs {
			if !again[i] {
				del = append(del, ids[i]) // stored, or rejected
			}
		}
		var be *storage.BulkError
		if errors.As(writeErr, &be) {
			writeErr = nil // the backend answered: not a failure of the drainer
		}
	}
	if len(del) > 0 {
		if _, err := q.AuditOutboxDelete(ctx, del); err != nil {
			return 0, errors.Wrap(err, "audit: delete written outbox rows")
		}
	}
	if len(retry.Ids) > 0 {
		if _, err := q.AuditOutboxRetry(ctx, retry); err != nil {
			return 0, errors.Wrap(err, "audit: put back outbox rows")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, errors.Wrap(err, "audit: drain the outbox")
	}
	return len(rows), writeErr
}
