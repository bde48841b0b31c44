//go:build chaos

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// chaosProc is one `fraiseql-observers run` of the chaos suite. Its log goes
// to a file (hundreds of processes come and go in a long run); the last lines
// are kept for failure messages.
type chaosProc struct {
	*observertest.Process
	slot     int
	killedBy bool // set before the suite kills it on purpose
}

func (p *chaosProc) isStarted() bool { return isClosed(p.Started()) }
func (p *chaosProc) isExited() bool  { return isClosed(p.Exited()) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// spawnChaosProc starts `run` without waiting for it to start.
func spawnChaosProc(dir, databaseURL, cfgPath string, slot, n int) (*chaosProc, error) {
	p, err := observertest.Spawn(context.Background(), observertest.ProcessOptions{
		Binary: binary, ConfigPath: cfgPath, DatabaseURL: databaseURL,
		LogLevel: "info", DrainTimeout: 10 * time.Second, Args: []string{"--standby-retry", "1s"},
		LogFile: filepath.Join(dir, fmt.Sprintf("run-slot%d-%03d.log", slot, n)), TailLines: 30,
	})
	if err != nil {
		return nil, err
	}
	return &chaosProc{Process: p, slot: slot}, nil
}

// chaosReceiver is the webhook endpoint: it records every request by
// webhook-id, answers 500 to some and hangs on others (until the client gives
// up, at most hangMax), and answers 200 to the rest. It keeps its own
// records on top of an observertest.Receiver that keeps none.
type chaosReceiver struct {
	*observertest.Receiver
	fail, hang float64 // probabilities
	hangMax    time.Duration

	mu       sync.Mutex
	ids      map[string]*idRecord // webhook-id → what arrived under it
	requests int
	fails    int
	hangs    int
	ok       int
	bad      []string // malformed requests
}

// idRecord is what the receiver knows about one webhook-id.
type idRecord struct {
	Keys      map[string]bool // (change id, observer, path) seen under this id; one expected
	Requests  int
	Successes int // 2xx answers
}

type chaosEnvelope struct {
	ID       string `json:"id"`
	Observer string `json:"observer"`
}

func newChaosReceiver(t *testing.T, fail, hang float64, hangMax time.Duration) *chaosReceiver {
	r := &chaosReceiver{fail: fail, hang: hang, hangMax: hangMax, ids: map[string]*idRecord{}}
	r.Receiver = observertest.NewReceiver(t, observertest.ReceiverOptions{Discard: true, Respond: r.respond})
	return r
}

func (r *chaosReceiver) respond(ctx context.Context, d observertest.Delivery) observertest.Response {
	var env chaosEnvelope
	err := d.ReadErr
	if err == nil {
		err = json.Unmarshal(d.Body, &env)
	}
	if err != nil || d.ID == "" || env.ID == "" {
		r.mu.Lock()
		r.bad = append(r.bad, fmt.Sprintf("%s %s webhook-id=%q err=%v body=%.200s", d.Method, d.Path, d.ID, err, d.Body))
		r.mu.Unlock()
		return observertest.Response{Status: http.StatusBadRequest} // permanent: the job is cancelled and the run fails
	}
	key := env.ID + "|" + env.Observer + "|" + d.Path
	dice := mrand.Float64()
	r.mu.Lock()
	r.requests++
	rec := r.ids[d.ID]
	if rec == nil {
		rec = &idRecord{Keys: map[string]bool{}}
		r.ids[d.ID] = rec
	}
	rec.Keys[key] = true
	rec.Requests++
	switch {
	case dice < r.fail:
		r.fails++
		r.mu.Unlock()
		return observertest.Response{Status: http.StatusInternalServerError}
	case dice < r.fail+r.hang:
		r.hangs++
		r.mu.Unlock()
		// Bounded: the client's action timeout ends the request first.
		select {
		case <-ctx.Done():
		case <-time.After(r.hangMax):
		}
		return observertest.Response{Status: http.StatusServiceUnavailable}
	}
	rec.Successes++
	r.ok++
	r.mu.Unlock()
	return observertest.Response{}
}

// counts returns the request counts: all, answered 500, hung, answered 200.
func (r *chaosReceiver) counts() (requests, fails, hangs, ok int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.fails, r.hangs, r.ok
}

// malformed returns the requests that were not well-formed deliveries.
func (r *chaosReceiver) malformed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// snapshot copies the per-id records.
func (r *chaosReceiver) snapshot() map[string]idRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]idRecord, len(r.ids))
	for id, rec := range r.ids {
		keys := make(map[string]bool, len(rec.Keys))
		for k := range rec.Keys {
			keys[k] = true
		}
		out[id] = idRecord{Keys: keys, Requests: rec.Requests, Successes: rec.Successes}
	}
	return out
}

// pgIsReady waits (bounded) until pg_isready reports the server at host:port
// accepting connections.
func pgIsReady(ctx context.Context, host, port string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := exec.CommandContext(cctx, "pg_isready", "-q", "-h", host, "-p", port).Run()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres at %s:%s not ready after %s: %v", host, port, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, name)
		return d
	}
	return def
}

// defaultCluster is "<first version in /etc/postgresql> main".
func defaultCluster() string {
	ents, err := os.ReadDir("/etc/postgresql")
	ver := "15"
	if err == nil {
		var names []string
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		if len(names) > 0 {
			ver = names[0]
		}
	}
	return ver + " main"
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "NEVER"
	}
	return d.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// jobStates counts River jobs by state (only the given states when any);
// nil when the query failed.
func jobStates(ctx context.Context, pool *pgxpool.Pool, only ...string) map[string]int {
	if only == nil {
		only = []string{} // NULL would match nothing
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := pool.Query(qctx, `SELECT state::text, count(*) FROM river_job
		WHERE kind IN ('fraiseql_observer_action', 'fraiseql_observer_batch') AND (cardinality($1::text[]) = 0 OR state::text = ANY($1)) GROUP BY 1`, only)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if rows.Scan(&st, &n) != nil {
			return nil
		}
		out[st] = n
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}

// stuckJobs describes up to ten jobs that are not completed.
func stuckJobs(ctx context.Context, pool *pgxpool.Pool) string {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := pool.Query(qctx, `SELECT id, state::text, attempt, max_attempts, coalesce(attempted_at::text, ''),
		coalesce(attempted_by::text, ''), coalesce(errors[array_length(errors, 1)]::text, '')
		FROM river_job WHERE kind IN ('fraiseql_observer_action', 'fraiseql_observer_batch') AND state <> 'completed' ORDER BY id LIMIT 10`)
	if err != nil {
		return "stuck jobs: " + err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id int64
		var st, at, by, lastErr string
		var attempt, maxAttempts int
		if err := rows.Scan(&id, &st, &attempt, &maxAttempts, &at, &by, &lastErr); err != nil {
			return b.String() + err.Error()
		}
		fmt.Fprintf(&b, "  job %d %s attempt %d/%d attempted_at %s by %s last error %.300s\n", id, st, attempt, maxAttempts, at, by, lastErr)
	}
	return b.String()
}

// adminExecURL runs one statement on the admin database (bounded).
func adminExecURL(t *testing.T, adminURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	require.NoError(t, err, "connect %s", adminURL)
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}

// deleteRedisPrefix removes the run's keys from the shared Redis (they would
// expire by TTL anyway).
func deleteRedisPrefix(rdb *goredis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}
