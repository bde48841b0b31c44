package river

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// capture is an audit recorder that keeps what it is given.
type capture struct {
	mu   sync.Mutex
	recs []storage.AuditRecord
}

func (c *capture) Record(r storage.AuditRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
}

// scripted is an action whose Run returns err.
type scripted struct{ err error }

func (*scripted) Type() string                                     { return "webhook" }
func (*scripted) AttemptTimeout() time.Duration                    { return 0 }
func (*scripted) Settings() []observers.Setting                    { return nil }
func (a *scripted) Run(context.Context, *observers.Delivery) error { return a.err }

// Each attempt's outcome is recorded with its status: succeeded, cached,
// failed while attempts remain, dead for a permanent failure or the last
// attempt; an attempt not made (an open breaker) records nothing. A
// replay's outcomes have ids of their own.
func TestWorkerRecordsOutcomes(t *testing.T) {
	t.Parallel()
	rec := &capture{}
	w := NewActionWorker(WorkerParams{Env: &observers.Env{Audit: rec}})
	ev := &observers.Event{Seq: 7, ID: "ev-7", Kind: observers.KindUpdate, EntityType: "Order", EntityID: "o-7",
		CreatedAt: time.Now(), RawData: []byte(`{"a":1}`)}
	transient := errors.New("connection refused")
	for _, tc := range []struct {
		err          error
		attempt, max int
		replay       int64
		want         storage.AuditStatus
		id           string
	}{
		{nil, 1, 3, 0, storage.AuditSucceeded, "7:o:0:1:succeeded"},
		{observers.ErrCached, 2, 3, 0, storage.AuditCached, "7:o:0:2:cached"},
		{transient, 1, 3, 0, storage.AuditFailed, "7:o:0:1:failed"},
		{transient, 3, 3, 0, storage.AuditDead, "7:o:0:3:dead"},
		{observers.Permanent(errors.New("400 Bad Request")), 1, 3, 0, storage.AuditDead, "7:o:0:1:dead"},
		{nil, 1, 3, 12, storage.AuditSucceeded, "7:o:0:1:succeeded:replay12"},
		{&observers.SnoozeError{Until: time.Now().Add(time.Minute)}, 1, 3, 0, "", ""},
	} {
		rec.recs = nil
		o := &observers.Observer{Name: "o", Actions: []observers.Action{&scripted{err: tc.err}}}
		d := &observers.Delivery{Event: ev, Observer: o, Attempt: tc.attempt, Env: w.env, Replay: tc.replay}
		_ = w.run(context.Background(), d, tc.max)
		if tc.want == "" {
			require.Empty(t, rec.recs, "an attempt not made records nothing")
			continue
		}
		require.Len(t, rec.recs, 1, tc.id)
		r := rec.recs[0]
		require.Equal(t, tc.id, r.ID)
		require.Equal(t, tc.want, r.Status)
		require.Equal(t, tc.attempt, r.Attempt)
		require.Equal(t, "ev-7", r.EventID)
		require.Equal(t, int64(7), r.EventSeq)
		require.Equal(t, "UPDATE", r.EventKind)
		require.Equal(t, "webhook", r.ActionType)
		require.Equal(t, "o", r.ObserverID)
		require.Nil(t, r.Data, "outcomes carry no data")
		require.Equal(t, r.Timestamp, r.Timestamp.Truncate(time.Millisecond))
		if tc.err != nil && tc.err != observers.ErrCached {
			require.Contains(t, r.Error, tc.err.Error())
		} else {
			require.Empty(t, r.Error)
		}
	}
}
