package river

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// jobLogTTL is how long a failed delivery job's attributes are kept for
// River's own line about it, which River logs right after Work returns.
const jobLogTTL = time.Minute

// jobLogSweepEvery bounds how often put sweeps expired entries.
const jobLogSweepEvery = time.Second

// jobLog holds the delivery attributes of the action jobs whose Work just
// returned an error, so that River's own lines about them ("Job errored",
// "Job snoozed", "Job cancelled explicitly"), which carry only job_id,
// name the event, observer, action type and attempt too.
type jobLog struct {
	mu    sync.Mutex
	m     map[int64]jobLogEntry
	swept time.Time
}

type jobLogEntry struct {
	attrs []slog.Attr
	at    time.Time
}

func newJobLog() *jobLog { return &jobLog{m: map[int64]jobLogEntry{}} }

// put remembers the attributes of job's delivery for jobLogTTL.
func (j *jobLog) put(job *river.Job[ActionArgs]) {
	a := job.Args
	attrs := []slog.Attr{
		slog.String(observers.LogKeyEventID, a.EventID), slog.Int64(observers.LogKeyEventSeq, a.Seq),
		slog.String(observers.LogKeyObserver, a.Observer), slog.String(observers.LogKeyActionType, a.ActionType),
		slog.Int(observers.LogKeyActionIndex, a.Action), slog.Int(observers.LogKeyAttempt, job.Attempt),
	}
	if a.Replay != 0 {
		attrs = append(attrs, slog.Int64(observers.LogKeyReplay, a.Replay))
	}
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[job.ID] = jobLogEntry{attrs: attrs, at: now}
	if now.Sub(j.swept) >= jobLogSweepEvery {
		j.swept = now
		for id, e := range j.m {
			if now.Sub(e.at) > jobLogTTL {
				delete(j.m, id)
			}
		}
	}
}

func (j *jobLog) get(id int64) []slog.Attr {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.m[id]
	if !ok || time.Since(e.at) > jobLogTTL {
		return nil
	}
	return e.attrs
}

// jobLogHandler adds a job's delivery attributes (jobLog) to River's lines
// that carry its job_id.
type jobLogHandler struct {
	h    slog.Handler
	jobs *jobLog
}

func (l *jobLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *jobLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == observers.LogKeyJobID && a.Value.Kind() == slog.KindInt64 {
			attrs = l.jobs.get(a.Value.Int64())
			return false
		}
		return true
	})
	if len(attrs) > 0 {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return l.h.Handle(ctx, r)
}

func (l *jobLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &jobLogHandler{h: l.h.WithAttrs(attrs), jobs: l.jobs}
}

func (l *jobLogHandler) WithGroup(name string) slog.Handler {
	return &jobLogHandler{h: l.h.WithGroup(name), jobs: l.jobs}
}
