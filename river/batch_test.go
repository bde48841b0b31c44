package river

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// batchEnv is a River client working batch jobs of one webhook observer
// against a loopback receiver.
type batchEnv struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	cfg    *observers.Config
	store  *ConfigStore
	ver    *Version
	m      *Metrics

	mu   sync.Mutex
	hits map[string]int // entity id → requests
}

// newBatchEnv starts a receiver answering each request with respond(entity
// id, request number for that id) and a client with the config's top-level
// extra and the observer's hook lines.
func newBatchEnv(t *testing.T, extra, hook string, handoff time.Duration, respond func(id string, n int) int) *batchEnv {
	t.Helper()
	e := &batchEnv{hits: map[string]int{}, m: NewMetrics(nil)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			EntityID string `json:"entity_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&env)
		e.mu.Lock()
		e.hits[env.EntityID]++
		n := e.hits[env.EntityID]
		e.mu.Unlock()
		code := respond(env.EntityID, n)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1800")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)

	ctx := context.Background()
	e.pool, _ = sqltest.NewDB(t)
	cfg, diags, err := observers.ParseWithEnv("batch.yaml", []byte(extra+`
allow_private_targets: true
observers:
  hook:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url: "`+srv.URL+`", timeout: 5s}
`+hook), func(string) (string, bool) { return "", false })
	require.NoError(t, err, "%v", diags)
	e.cfg = cfg
	store := NewConfigStore(e.pool)
	e.store = store
	e.ver, err = store.Register(ctx, cfg)
	require.NoError(t, err)
	e.client, err = NewClient(ClientParams{
		WorkerParams: WorkerParams{
			Pool: e.pool, Configs: store,
			Env:     &observers.Env{HTTP: webhook.NewHTTPClient(webhook.HTTPClientConfig{AllowPrivateTargets: true})},
			Metrics: e.m,
		},
		Config: cfg, BatchHandoffAfter: handoff,
	})
	require.NoError(t, err)
	return e
}

// enqueue logs a change per id and enqueues their deliveries as the
// listener does, with deliveries_per_job perJob.
func (e *batchEnv) enqueue(t *testing.T, perJob int, ids ...string) map[string]int64 {
	t.Helper()
	return e.enqueueWith(t, NewEnqueuer(EnqueuerParams{Client: e.client, DeliveriesPerJob: perJob}), 0, ids...)
}

// enqueueWith logs a change per id and enqueues their deliveries with enq,
// as jobs of replay (0: the listener's).
func (e *batchEnv) enqueueWith(t *testing.T, enq *Enqueuer, replay int64, ids ...string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	seqs := map[string]int64{}
	var jobs []listener.Job
	for _, id := range ids {
		var seq int64
		var uuid string
		require.NoError(t, e.pool.QueryRow(ctx, `INSERT INTO core.tb_entity_change_log
			(object_type, object_id, modification_type, object_data) VALUES ('Order', $1, 'INSERT', '{}')
			RETURNING pk_entity_change_log, id::text`, id).Scan(&seq, &uuid))
		seqs[id] = seq
		jobs = append(jobs, listener.Job{Event: &observers.Event{Seq: seq, ID: uuid, EntityType: "Order"},
			Observer: e.cfg.Observer("hook"), ActionIndex: 0, ConfigVersion: e.ver.ID, Replay: replay})
	}
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, enq.EnqueueTx(ctx, tx, jobs))
	require.NoError(t, tx.Commit(ctx))
	return seqs
}

func (e *batchEnv) start(t *testing.T) {
	t.Helper()
	require.NoError(t, e.client.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, e.client.Stop(context.Background())) })
}

// delivery is a row of observer_deliveries.
type delivery struct {
	JobID, Batch int64
	State        string
	Attempt, Max int
	Errors       int
	LastError    string
	Snoozes      int
	Wait         time.Duration // scheduled_at - now
}

func (e *batchEnv) deliveries(t *testing.T) map[int64]delivery {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT seq, job_id, coalesce(batch_job_id, 0), state, attempt, max_attempts,
		coalesce(array_length(errors, 1), 0), coalesce(errors[array_length(errors, 1)]->>'error', ''),
		coalesce((metadata->>'snoozes')::int, 0), extract(epoch FROM scheduled_at - now())::float8
		FROM observer_deliveries`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]delivery{}
	for rows.Next() {
		var seq int64
		var d delivery
		var wait float64
		require.NoError(t, rows.Scan(&seq, &d.JobID, &d.Batch, &d.State, &d.Attempt, &d.Max, &d.Errors, &d.LastError, &d.Snoozes, &wait))
		d.Wait = time.Duration(wait * float64(time.Second))
		_, dup := out[seq]
		require.False(t, dup, "delivery of change %d listed twice", seq)
		out[seq] = d
	}
	require.NoError(t, rows.Err())
	return out
}

func (e *batchEnv) requests(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[id]
}

// settled reports whether no delivery is available or running.
func (e *batchEnv) settled(t *testing.T) bool {
	for _, d := range e.deliveries(t) {
		if d.State == "available" || d.State == "running" {
			return false
		}
	}
	return true
}

// One batch job makes the first attempt of every delivery; each that does
// not succeed continues as its own job in the state River would have left
// it in: retryable with the attempt and its error, cancelled (the DLQ), or
// retryable no earlier than the receiver's Retry-After.
func TestBatchOutcomesContinueAsTheirOwnJobs(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, "", "", 0, func(id string, _ int) int {
		switch id {
		case "down":
			return http.StatusServiceUnavailable
		case "bad":
			return http.StatusUnprocessableEntity
		case "later":
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	ctx := context.Background()
	seqs := e.enqueue(t, 100, "ok1", "down", "bad", "later", "gone", "ok2")
	_, err := e.pool.Exec(ctx, `DELETE FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, seqs["gone"])
	require.NoError(t, err)
	var batches int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, BatchKind).Scan(&batches))
	require.Equal(t, 1, batches, "six deliveries of one action type share one job")

	e.start(t)
	require.Eventually(t, func() bool { return e.settled(t) }, 30*time.Second, 20*time.Millisecond)
	ds := e.deliveries(t)
	require.Len(t, ds, 6)

	batch := ds[seqs["ok1"]].JobID
	for _, id := range []string{"ok1", "ok2"} {
		d := ds[seqs[id]]
		require.Equal(t, "completed", d.State, id)
		require.Equal(t, batch, d.JobID, "%s was delivered by the batch job", id)
		require.Equal(t, 1, e.requests(id), id)
	}
	down := ds[seqs["down"]]
	require.Equal(t, "retryable", down.State)
	require.Equal(t, batch, down.Batch, "the follow-up names its batch")
	require.NotEqual(t, batch, down.JobID)
	require.Equal(t, 1, down.Attempt, "the batch's attempt counts")
	require.Equal(t, observers.RetryMaxAttemptsDefault, down.Max)
	require.Equal(t, 1, down.Errors)
	require.Contains(t, down.LastError, "503")

	bad := ds[seqs["bad"]]
	require.Equal(t, "cancelled", bad.State, "a permanent failure goes to the DLQ at once")
	require.Equal(t, 1, bad.Attempt)
	require.Contains(t, bad.LastError, "422")

	later := ds[seqs["later"]]
	require.Equal(t, "retryable", later.State)
	require.Greater(t, later.Wait, 20*time.Minute, "Retry-After: 1800 holds the retry back")

	gone := ds[seqs["gone"]]
	require.Equal(t, "cancelled", gone.State)
	require.Contains(t, gone.LastError, "deleted from the log")
	require.Equal(t, 0, e.requests("gone"))

	// The counters move just after the outcomes commit.
	for state, want := range map[string]float64{"retryable": 2, "cancelled": 2, "available": 0} {
		require.Eventually(t, func() bool {
			return counterValue(t, e.m.BatchFollowUps.WithLabelValues("webhook", state)) == want
		}, 10*time.Second, 10*time.Millisecond, state)
	}
}

// A delivery that failed in its batch is retried as its own job, with the
// observer's policy, until it succeeds.
func TestBatchFollowUpRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, "", "    retry: {max_attempts: 5, initial_delay: 10ms, max_delay: 20ms}\n", 0, func(id string, n int) int {
		if id == "flaky" && n < 3 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	seqs := e.enqueue(t, 100, "flaky", "steady")
	e.start(t)
	require.Eventually(t, func() bool {
		d := e.deliveries(t)[seqs["flaky"]]
		return d.State == "completed"
	}, 60*time.Second, 20*time.Millisecond)
	d := e.deliveries(t)[seqs["flaky"]]
	require.Equal(t, 3, d.Attempt, "the batch's attempt and two of its own")
	require.Equal(t, 3, e.requests("flaky"))
	require.Equal(t, 1, e.requests("steady"))
}

// max_parallelism bounds deliveries across batch jobs and the jobs of their
// own; what a batch cannot start before its hand-off deadline continues as
// its own job without spending an attempt, and is delivered.
func TestBatchRespectsMaxParallelismAndHandsOff(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int32
	e := newBatchEnv(t, "concurrency: {max_parallelism: 2}\n", "", 300*time.Millisecond, func(string, int) int {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		return http.StatusOK
	})
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = "o" + strconv.Itoa(i)
	}
	seqs := e.enqueue(t, 5, ids...)
	e.start(t)
	require.Eventually(t, func() bool {
		ds := e.deliveries(t)
		for _, d := range ds {
			if d.State != "completed" {
				return false
			}
		}
		return len(ds) == len(ids)
	}, 60*time.Second, 20*time.Millisecond)
	require.LessOrEqual(t, peak.Load(), int32(2), "at most max_parallelism deliveries at once")
	handedOff := 0
	for _, id := range ids {
		require.Equal(t, 1, e.requests(id), "%s delivered once", id)
		if d := e.deliveries(t)[seqs[id]]; d.Batch != 0 {
			handedOff++
			require.Equal(t, 1, d.Attempt, "%s: handed off without an attempt, then delivered on its first", id)
			require.Zero(t, d.Errors, id)
		}
	}
	require.Positive(t, handedOff, "with 2 slots of 200ms and a 300ms hand-off, some deliveries leave their batch")
	require.Eventually(t, func() bool {
		return counterValue(t, e.m.BatchFollowUps.WithLabelValues("webhook", "available")) == float64(handedOff)
	}, 10*time.Second, 10*time.Millisecond)
	t.Logf("%d of %d deliveries handed off", handedOff, len(ids))
}

// A batch job has a finite timeout, covering its hand-off wait and its
// slowest action: River's rescuer never rescues a job whose timeout is
// negative, so a batch left running by a killed process would stay there.
func TestBatchTimeoutIsFinite(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, "", "", 0, func(string, int) int { return http.StatusOK })
	job := &river.Job[BatchArgs]{Args: BatchArgs{ActionType: "webhook", ConfigVersion: e.ver.ID,
		Deliveries: []BatchDelivery{{Observer: "hook", Action: 0, Seqs: []int64{1}}}}}
	w := &BatchWorker{w: NewActionWorker(WorkerParams{Pool: e.pool, Configs: NewConfigStore(e.pool)}), handoff: BatchHandoffAfter}
	want := BatchHandoffAfter + (5*time.Second + timeoutMargin) + timeoutMargin
	require.Equal(t, want, w.Timeout(job), "a version not cached yet is read: the webhook's 5s timeout")
	require.Equal(t, want, w.Timeout(job), "now cached")
	job.Args.ConfigVersion = -1
	require.Equal(t, BatchHandoffAfter+batchActionTimeout+timeoutMargin, w.Timeout(job), "an unknown version: the default action timeout")
	require.Greater(t, rescueAfter(e.cfg), BatchHandoffAfter+batchActionTimeout+timeoutMargin+batchRecordTimeout,
		"River rescues a batch only after it can have finished, outcomes recorded")
}

// Jobs enqueued in quick succession are worked at once, not at the
// producers' next fetch poll (here ten minutes): River notifies at most once
// per fetch cooldown, so the Enqueuer notifies every transaction itself.
func TestBackToBackEnqueuesAreWorkedWithoutAPoll(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, "workers: {fetch_poll_interval: 10m}\n", "", 0, func(string, int) int { return http.StatusOK })
	e.start(t)
	for round := range 10 {
		e.enqueue(t, 100, fmt.Sprintf("a%d", round))
		e.enqueue(t, 100, fmt.Sprintf("b%d", round))
		require.Eventually(t, func() bool {
			return e.requests(fmt.Sprintf("a%d", round)) == 1 && e.requests(fmt.Sprintf("b%d", round)) == 1
		}, 10*time.Second, 5*time.Millisecond, "round %d: both deliveries without waiting for a poll", round)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
