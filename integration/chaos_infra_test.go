//go:build chaos

package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// chaosProc is one `fraiseql-observers run` of the chaos suite. Its log goes
// to a file (hundreds of processes come and go in a long run); the last lines
// are kept for failure messages.
type chaosProc struct {
	cmd      *exec.Cmd
	slot     int
	logPath  string
	started  chan struct{}
	exited   chan struct{}
	exitErr  error
	killedBy bool // set before the suite kills it on purpose

	mu   sync.Mutex
	tail []string
}

func (p *chaosProc) Pid() int { return p.cmd.Process.Pid }

func (p *chaosProc) isStarted() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

func (p *chaosProc) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Tail returns the last lines the process logged.
func (p *chaosProc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// spawnChaosProc starts `run` without waiting for it to start.
func spawnChaosProc(dir, databaseURL, cfgPath string, slot, n int) (*chaosProc, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("run-slot%d-%03d.log", slot, n))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--database-url", databaseURL,
		"--http-addr", "127.0.0.1:0", "--log-level", "info", "--drain-timeout", "10s", "--standby-retry", "1s")
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &chaosProc{cmd: cmd, slot: slot, logPath: logPath, started: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() {
		defer f.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 30 {
				p.tail = p.tail[len(p.tail)-30:]
			}
			p.mu.Unlock()
			if strings.Contains(line, "run: started") {
				once.Do(func() { close(p.started) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill SIGKILLs the process and waits (bounded) until it is gone.
func (p *chaosProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
	}
}

// chaosReceiver is the webhook endpoint: it records every request by
// webhook-id, answers 500 to some and hangs on others (until the client gives
// up, at most hangMax), and answers 200 to the rest.
type chaosReceiver struct {
	*httptest.Server
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
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *chaosReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	var env chaosEnvelope
	if err == nil {
		err = json.Unmarshal(body, &env)
	}
	if err != nil || id == "" || env.ID == "" {
		r.mu.Lock()
		r.bad = append(r.bad, fmt.Sprintf("%s %s webhook-id=%q err=%v body=%.200s", req.Method, req.URL.Path, id, err, body))
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest) // permanent: the job is cancelled and the run fails
		return
	}
	key := env.ID + "|" + env.Observer + "|" + req.URL.Path
	dice := mrand.Float64()
	r.mu.Lock()
	r.requests++
	rec := r.ids[id]
	if rec == nil {
		rec = &idRecord{Keys: map[string]bool{}}
		r.ids[id] = rec
	}
	rec.Keys[key] = true
	rec.Requests++
	switch {
	case dice < r.fail:
		r.fails++
		r.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		return
	case dice < r.fail+r.hang:
		r.hangs++
		r.mu.Unlock()
		// Bounded: the client's action timeout ends the request first.
		select {
		case <-req.Context().Done():
		case <-time.After(r.hangMax):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	rec.Successes++
	r.ok++
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
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
