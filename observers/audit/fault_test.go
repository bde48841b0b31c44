package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/audit"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// faultyAudit wraps the real Postgres audit store to inject failures: every
// write fails whole while down, blocks while hang is open, and chosen
// records fail alone (retryable, a number of times) or are rejected.
type faultyAudit struct {
	storage.Audit

	mu       sync.Mutex
	down     bool
	hang     chan struct{} // non-nil: writes wait for it to close (or their context)
	failures map[string]int
	rejected map[string]bool
	writes   int
	records  int
	blocked  chan struct{} // closed when a write first waits on hang
}

func newFaulty(pool *pgxpool.Pool) *faultyAudit {
	return &faultyAudit{Audit: postgres.NewAudit(pool), failures: map[string]int{}, rejected: map[string]bool{}}
}

func (f *faultyAudit) set(fn func(f *faultyAudit)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultyAudit) Write(ctx context.Context, recs []storage.AuditRecord) error {
	f.mu.Lock()
	f.writes++
	f.records += len(recs)
	hang, down, blocked := f.hang, f.down, f.blocked
	if hang != nil && blocked != nil {
		close(blocked)
		f.blocked = nil
	}
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return errors.Mark(ctx.Err(), storage.ErrUnavailable)
		}
	}
	if down {
		return errors.Mark(errors.New("injected: the backend is down"), storage.ErrUnavailable)
	}
	var bulk storage.BulkError
	var pass []storage.AuditRecord
	var at []int // position in recs of each record passed on
	f.mu.Lock()
	for i, r := range recs {
		switch {
		case f.rejected[r.ID]:
			bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: i, Err: errors.Mark(errors.New("injected: rejected"), storage.ErrRejected)})
		case f.failures[r.ID] > 0:
			f.failures[r.ID]--
			bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: i, Err: errors.New("injected: item failed, may pass")})
		default:
			pass, at = append(pass, r), append(at, i)
		}
	}
	f.mu.Unlock()
	if err := f.Audit.Write(ctx, pass); err != nil {
		var inner *storage.BulkError
		if !errors.As(err, &inner) {
			return err
		}
		for _, e := range inner.Failed {
			bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: at[e.Index], Err: e.Err})
		}
	}
	if len(bulk.Failed) == 0 {
		return nil
	}
	return &bulk
}

// env is a recorder on a fresh database with a faulty store.
type env struct {
	pool    *pgxpool.Pool
	store   *faultyAudit
	metrics *audit.Metrics
	rec     *audit.Recorder
}

// newEnv builds a recorder with short intervals; p's non-zero fields
// override them. It runs until the test ends.
func newEnv(t *testing.T, p audit.Params) *env {
	t.Helper()
	pool, _ := sqltest.NewDB(t)
	e := &env{pool: pool, store: newFaulty(pool), metrics: audit.NewMetrics(prometheus.NewRegistry())}
	p.Store, p.Pool, p.Metrics = e.store, pool, e.metrics
	if p.FlushInterval == 0 {
		p.FlushInterval = 10 * time.Millisecond
	}
	if p.DrainInterval == 0 {
		p.DrainInterval = 10 * time.Millisecond
	}
	if p.RetryBase == 0 {
		p.RetryBase = 10 * time.Millisecond
	}
	if p.RetryMax == 0 {
		p.RetryMax = 50 * time.Millisecond
	}
	if p.HoldRetryMax == 0 {
		p.HoldRetryMax = 50 * time.Millisecond
	}
	rec, err := audit.New(p)
	require.NoError(t, err)
	e.rec = rec
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = rec.Run(context.Background())
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.store.set(func(f *faultyAudit) {
			if f.hang != nil {
				select {
				case <-f.hang:
				default:
					close(f.hang)
				}
			}
		})
		require.NoError(t, rec.Close(ctx))
		<-ran
	})
	return e
}

// record is a delivery record of event seq.
func record(seq int) storage.AuditRecord {
	return storage.AuditRecord{
		ID: storage.AuditID(int64(seq), "o", 0, 1, storage.AuditSucceeded), EventID: fmt.Sprintf("ev-%d", seq), EventSeq: int64(seq),
		EntityType: "Order", EntityID: fmt.Sprint(seq), EventKind: "INSERT", Timestamp: time.Now().UTC().Truncate(time.Millisecond),
		ObserverID: "o", ActionType: "webhook", Status: storage.AuditSucceeded, Attempt: 1, DurationMS: 3,
	}
}

func (e *env) stored(t *testing.T) []string {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT id FROM observer_audit ORDER BY id`)
	require.NoError(t, err)
	ids := []string{}
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

func (e *env) outbox(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT count(*) FROM observer_audit_outbox`).Scan(&n))
	return n
}

func (e *env) failures(reason string) float64 {
	return testutil.ToFloat64(e.metrics.IndexFailures.WithLabelValues("postgres", reason))
}

// ids lists the ids of recs in the order stored lists them.
func ids(recs []storage.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	slices.Sort(out) // byte order, as the table's COLLATE "C"
	return out
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
