package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// binary is the fraiseql-observers binary under test, built once by TestMain
// with the faultinject tag (fault hooks are inert unless their variable is set).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fraiseql-observers-it-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "fraiseql-observers")
	build := exec.Command("go", "build", "-race", "-tags", "faultinject", "-o", binary, "../cmd/fraiseql-observers")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fraiseql-observers:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `fraiseql-observers run`.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	mu       sync.Mutex
	log      bytes.Buffer
	started  chan struct{}
	exited   chan struct{}
	exitErr  error
	HTTPAddr string
	Config   string // path of the configuration file it runs with
}

// startRun starts `run` with the config text against databaseURL and waits
// until it reports that it started.
func startRun(t *testing.T, databaseURL, config string, env ...string) *proc {
	t.Helper()
	return startRunArgs(t, databaseURL, config, nil, env...)
}

// startRunArgs is startRun with extra command-line arguments.
func startRunArgs(t *testing.T, databaseURL, config string, args []string, env ...string) *proc {
	t.Helper()
	p := spawnRunArgs(t, databaseURL, config, args, env...)
	select {
	case <-p.started:
	case <-p.exited:
		t.Fatalf("run exited before starting: %v\n%s", p.exitErr, p.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not start in time\n%s", p.Log())
	}
	return p
}

// spawnRun starts `run` without waiting for it.
func spawnRun(t *testing.T, databaseURL, config string, env ...string) *proc {
	t.Helper()
	return spawnRunArgs(t, databaseURL, config, nil, env...)
}

// spawnRunArgs is spawnRun with extra command-line arguments.
func spawnRunArgs(t *testing.T, databaseURL, config string, args []string, env ...string) *proc {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o600))
	argv := append([]string{"run", "--config", cfgPath, "--database-url", databaseURL,
		"--http-addr", "127.0.0.1:0", "--log-level", "debug", "--drain-timeout", "10s"}, args...)
	cmd := exec.Command(binary, argv...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	p := &proc{t: t, cmd: cmd, started: make(chan struct{}), exited: make(chan struct{}), Config: cfgPath}
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if strings.Contains(line, "run: started") {
				if i := strings.Index(line, "http_addr="); i >= 0 {
					p.HTTPAddr = strings.Fields(line[i+len("http_addr="):])[0]
				}
				once.Do(func() { close(p.started) })
			}
		}
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("log of pid %d:\n%s", cmd.Process.Pid, p.Log())
		}
	})
	return p
}

// Log returns everything the process logged so far.
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Stop sends SIGTERM and waits; it fails the test unless the exit is clean.
func (p *proc) Stop() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(p.t, p.exitErr, "run should exit 0 after SIGTERM\n%s", p.Log())
	case <-time.After(30 * time.Second):
		p.t.Fatalf("run did not stop after SIGTERM\n%s", p.Log())
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Exited is closed when the process has exited.
func (p *proc) Exited() <-chan struct{} { return p.exited }

// delivery is one request the receiver got.
type delivery struct {
	ID        string
	Timestamp string
	Signature string
	Header    http.Header
	Body      []byte
	Path      string
}

// receiver is a webhook endpoint on loopback that records every request and
// answers with respond (default 200).
type receiver struct {
	*httptest.Server
	mu         sync.Mutex
	deliveries []delivery
	arrived    chan delivery
	respond    func(d delivery, n int, h http.Header) int
}

// newReceiver starts a receiver; respond (nil: always 200) picks the status
// of the n-th request and may set response headers on h.
func newReceiver(t *testing.T, respond func(d delivery, n int, h http.Header) int) *receiver {
	r := &receiver{arrived: make(chan delivery, 10000), respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{
			ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
			Signature: req.Header.Get("webhook-signature"), Header: req.Header.Clone(), Body: body, Path: req.URL.Path,
		}
		r.mu.Lock()
		r.deliveries = append(r.deliveries, d)
		n := len(r.deliveries)
		r.mu.Unlock()
		status := http.StatusOK
		if r.respond != nil {
			status = r.respond(d, n, w.Header())
		}
		w.WriteHeader(status)
		if status < 300 {
			r.arrived <- d
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// All returns every request received so far.
func (r *receiver) All() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

// waitN waits for n successful deliveries and returns them.
func (r *receiver) waitN(t *testing.T, n int, timeout time.Duration) []delivery {
	t.Helper()
	var got []delivery
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case d := <-r.arrived:
			got = append(got, d)
		case <-deadline:
			t.Fatalf("got %d of %d deliveries in %s", len(got), n, timeout)
		}
	}
	return got
}

// quiet asserts that no successful delivery arrives within d: used only to
// show an absence, never to wait for something.
func (r *receiver) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case x := <-r.arrived:
		t.Fatalf("unexpected delivery %s: %s", x.ID, x.Body)
	case <-time.After(d):
	}
}

// insertChange writes one change-log row in its own transaction.
func insertChange(t *testing.T, pool *pgxpool.Pool, entity, id, kind, data string) int64 {
	t.Helper()
	var pk int64
	err := pool.QueryRow(context.Background(), `INSERT INTO core.tb_entity_change_log
		(object_type, object_id, modification_type, object_data) VALUES ($1, $2, $3, $4::jsonb)
		RETURNING pk_entity_change_log`, entity, id, kind, data).Scan(&pk)
	require.NoError(t, err)
	return pk
}

// jobCounts returns, per change-log pk, how many River jobs exist.
func jobCounts(t *testing.T, pool *pgxpool.Pool) map[int64]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, count(*) FROM observer_deliveries GROUP BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var seq int64
		var n int
		require.NoError(t, rows.Scan(&seq, &n))
		out[seq] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// webhookConfig returns a config with one observer per entry of observers
// (name → YAML body), listening on the default change log.
func webhookConfig(extra string, observers map[string]string) string {
	var b strings.Builder
	b.WriteString("listener:\n  id: it\n  batch_size: 100\n  poll_interval: 200ms\nallow_private_targets: true\n")
	b.WriteString(extra)
	b.WriteString("observers:\n")
	for name, body := range observers {
		b.WriteString("  " + name + ":\n")
		for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return b.String()
}

// scrape returns the /metrics text of the process serving at addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// metricValue reads one sample (name with its labels, as exposed) from the
// process's /metrics; 0 when the series is absent.
func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, addr), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}
