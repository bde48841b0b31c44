package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/audit"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
)

const eventually = 30 * time.Second

// Record returns at once while the store hangs; when the buffer is full
// records are dropped and counted; once the store answers, every record
// taken is written. Nothing is lost uncounted.
func TestRecordNeverBlocksOnAHungStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{Buffer: 10, BatchSize: 5, Writers: 4, WriteTimeout: time.Minute})
	hang, blocked := make(chan struct{}), make(chan struct{})
	e.store.set(func(f *faultyAudit) { f.hang, f.blocked = hang, blocked })

	var recs []storage.AuditRecord
	for i := 1; i <= 1000; i++ {
		recs = append(recs, record(i))
	}
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for _, r := range recs {
			e.rec.Record(r)
		}
	}()
	<-blocked // the flusher's first write waits for the store
	select {
	case <-recorded: // every Record returned while the write still hangs
	case <-time.After(eventually):
		t.Fatal("Record blocked while the store hung")
	}
	select {
	case <-hang:
		t.Fatal("the store was released early")
	default:
	}
	dropped := testutil.ToFloat64(e.metrics.Dropped)
	taken := testutil.ToFloat64(e.metrics.Records.WithLabelValues("succeeded"))
	require.Positive(t, dropped, "a buffer of 10 cannot hold 1000 records")
	require.Equal(t, float64(len(recs)), dropped+taken, "every record is either taken or dropped and counted")
	require.LessOrEqual(t, taken, float64(10+4*5), "at most the buffer and the batches in the four flushers' hands")

	close(hang)
	require.Eventually(t, func() bool { return float64(len(e.stored(t))) == taken }, eventually, 10*time.Millisecond)
	require.Zero(t, e.outbox(t))
}

// While the backend is down, whole batches go to the outbox (counted as
// unavailable); when it comes back, the drainer writes them and empties
// the outbox.
func TestOutboxKeepsRecordsWhileTheBackendIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 7})
	e.store.set(func(f *faultyAudit) { f.down = true })
	var recs []storage.AuditRecord
	for i := 1; i <= 50; i++ {
		recs = append(recs, record(i))
		e.rec.Record(recs[i-1])
	}
	require.Eventually(t, func() bool { return e.outbox(t) == 50 }, eventually, 10*time.Millisecond)
	require.Empty(t, e.stored(t))
	require.GreaterOrEqual(t, e.failures(audit.ReasonUnavailable), 50.0)
	var attempts int
	var lastErr string
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT min(attempts), min(last_error) FROM observer_audit_outbox`).Scan(&attempts, &lastErr))
	require.GreaterOrEqual(t, attempts, 1)
	require.Contains(t, lastErr, "injected: the backend is down")

	e.store.set(func(f *faultyAudit) { f.down = false })
	require.Eventually(t, func() bool { return e.outbox(t) == 0 }, eventually, 10*time.Millisecond)
	require.Equal(t, ids(recs), e.stored(t))
	require.Zero(t, testutil.ToFloat64(e.metrics.Dropped))

	// What came back from the outbox is the record as recorded.
	page, err := e.store.Search(t.Context(), storage.AuditQuery{EventSeq: 7})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	require.Equal(t, recs[6].ID, page.Records[0].ID)
	require.True(t, recs[6].Timestamp.Equal(page.Records[0].Timestamp))
	require.Equal(t, recs[6].EntityID, page.Records[0].EntityID)
}

// Items the backend fails alone are retried from the outbox until they are
// written; rejected items are counted and dropped, never kept; the other
// records of their batches are written at once.
func TestItemFailuresRetriedAndRejectedDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 10})
	var recs []storage.AuditRecord
	for i := 1; i <= 30; i++ {
		recs = append(recs, record(i))
	}
	e.store.set(func(f *faultyAudit) {
		f.failures[recs[2].ID] = 3 // fails three times, then passes
		f.failures[recs[15].ID] = 1
		f.rejected[recs[4].ID] = true
		f.rejected[recs[29].ID] = true
	})
	for _, r := range recs {
		e.rec.Record(r)
	}
	want := ids(append(append([]storage.AuditRecord{}, recs[:4]...), recs[5:29]...))
	require.Eventually(t, func() bool { return len(e.stored(t)) == len(want) && e.outbox(t) == 0 }, eventually, 10*time.Millisecond)
	require.Equal(t, want, e.stored(t))
	require.Equal(t, 4.0, e.failures(audit.ReasonItem), "three failures of one record, one of another")
	require.Equal(t, 2.0, e.failures(audit.ReasonRejected))
	require.Zero(t, e.failures(audit.ReasonUnavailable))
}

// The real Postgres backend rejects a record it cannot hold (a NUL in its
// data): only that one is dropped and counted. The outbox refuses it too
// while the backend is down, and keeps the others.
func TestRecordsPostgresCannotHoldAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 3})
	bad := record(2)
	bad.Data = json.RawMessage(`{"note":"a\u0000b"}`)
	recs := []storage.AuditRecord{record(1), bad, record(3)}
	for _, r := range recs {
		e.rec.Record(r)
	}
	require.Eventually(t, func() bool { return len(e.stored(t)) == 2 }, eventually, 10*time.Millisecond)
	require.Equal(t, ids([]storage.AuditRecord{recs[0], recs[2]}), e.stored(t))
	require.Equal(t, 1.0, e.failures(audit.ReasonRejected))

	e.store.set(func(f *faultyAudit) { f.down = true })
	bad2 := record(5)
	bad2.Data = bad.Data
	for _, r := range []storage.AuditRecord{record(4), bad2, record(6)} {
		e.rec.Record(r)
	}
	require.Eventually(t, func() bool { return e.outbox(t) == 2 && e.failures(audit.ReasonRejected) == 2 }, eventually, 10*time.Millisecond)
	e.store.set(func(f *faultyAudit) { f.down = false })
	require.Eventually(t, func() bool { return e.outbox(t) == 0 && len(e.stored(t)) == 4 }, eventually, 10*time.Millisecond)
	require.Equal(t, ids([]storage.AuditRecord{record(1), record(3), record(4), record(6)}), e.stored(t))
}

// When neither the backend nor the outbox takes a batch (Postgres itself
// is unreachable: here the outbox table is locked), the flusher holds it in
// memory and tries again; nothing is lost once Postgres answers.
func TestBatchHeldInMemoryWhileTheOutboxFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 5, WriteTimeout: 200 * time.Millisecond})
	e.store.set(func(f *faultyAudit) { f.down = true })
	lock, err := e.pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = lock.Exec(t.Context(), `LOCK TABLE observer_audit_outbox IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	var recs []storage.AuditRecord
	for i := 1; i <= 12; i++ {
		recs = append(recs, record(i))
		e.rec.Record(recs[i-1])
	}
	// Several rounds of failed writes: the batch is still held.
	require.Eventually(t, func() bool {
		var n int
		e.store.set(func(f *faultyAudit) { n = f.writes })
		return n >= 3
	}, eventually, 10*time.Millisecond)
	require.NoError(t, lock.Rollback(t.Context()))
	e.store.set(func(f *faultyAudit) { f.down = false })
	require.Eventually(t, func() bool { return len(e.stored(t)) == 12 && e.outbox(t) == 0 }, eventually, 10*time.Millisecond)
	require.Equal(t, ids(recs), e.stored(t))
	require.Zero(t, testutil.ToFloat64(e.metrics.Dropped))
}

// Close writes what is buffered before it returns; records after Close
// are dropped and counted.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 100, FlushInterval: time.Hour})
	var recs []storage.AuditRecord
	for i := 1; i <= 250; i++ {
		recs = append(recs, record(i))
		e.rec.Record(recs[i-1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	require.NoError(t, e.rec.Close(ctx))
	require.Equal(t, ids(recs), e.stored(t))
	e.rec.Record(record(999))
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.Dropped))
}

// Two drainers (two instances) share the outbox: every row is written
// once and deleted.
func TestTwoDrainersShareTheOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BatchSize: 10})
	var recs []storage.AuditRecord
	for i := 1; i <= 200; i++ {
		recs = append(recs, record(i))
	}
	enc := make([][]byte, len(recs))
	for i := range recs {
		enc[i] = mustJSON(t, recs[i])
	}
	_, err := e.pool.Exec(t.Context(), `INSERT INTO observer_audit_outbox (record) SELECT unnest($1::jsonb[])`, enc)
	require.NoError(t, err)

	second, err := audit.New(audit.Params{Store: e.store, Pool: e.pool, BatchSize: 10, DrainInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = second.Run(ctx) }()
	require.Eventually(t, func() bool { return e.outbox(t) == 0 }, eventually, 10*time.Millisecond)
	cancel()
	<-done
	require.Equal(t, ids(recs), e.stored(t))
	var sent int
	e.store.set(func(f *faultyAudit) { sent = f.records })
	require.Equal(t, len(recs), sent, "each row was claimed by one drainer and written once")
}

// The buffer is bounded by the bytes of data and errors too: records past
// BufferBytes are dropped and counted, and a written batch frees its bytes.
func TestBufferBytesBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, audit.Params{BufferBytes: 100, BatchSize: 10, FlushInterval: time.Hour})
	big := func(seq int) storage.AuditRecord {
		r := record(seq)
		r.Data = json.RawMessage(`{"note":"` + strings.Repeat("x", 40) + `"}`) // 51 bytes
		return r
	}
	e.rec.Record(big(1))
	e.rec.Record(big(2)) // 102 bytes: over
	e.rec.Record(record(3))
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.Dropped))
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	require.NoError(t, e.rec.Close(ctx))
	require.Equal(t, ids([]storage.AuditRecord{record(1), record(3)}), e.stored(t))
}

// Run's context ending without Close (no last flush) loses nothing
// uncounted: the batch a writer held and what is buffered are counted as
// dropped, and so is every record after it.
func TestRunEndedWithoutCloseCountsWhatItHeld(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	m := audit.NewMetrics(prometheus.NewRegistry())
	rec, err := audit.New(audit.Params{Store: newFaulty(pool), Pool: pool, Metrics: m, BatchSize: 100, FlushInterval: time.Hour, Writers: 1})
	require.NoError(t, err)
	for i := 1; i <= 150; i++ {
		rec.Record(record(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = rec.Run(ctx)
	}()
	count := func() (n int) {
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_audit`).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return count() == 100 }, eventually, 10*time.Millisecond, "the full batch is written")
	cancel()
	<-ran
	require.Equal(t, 50.0, testutil.ToFloat64(m.Dropped), "the 50 held for the hour-long flush interval")
	rec.Record(record(999))
	require.Equal(t, 51.0, testutil.ToFloat64(m.Dropped))
	require.Equal(t, 100, count())
}
