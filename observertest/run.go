package observertest

import (
	"bytes"
	"cmp"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/daemon"
	obsql "github.com/fraiseql/fraiseql-observers/sql"
)

// Options configures Run: the observer inside the test process.
type Options struct {
	// ConfigPath is the observers YAML file (the application's own), or
	// Config its text; one is required.
	ConfigPath string
	Config     string
	// DatabaseURL is the test database; Migrate adds the observer's tables
	// to it first.
	DatabaseURL string
	// Env holds the *_env variables the configuration names (URLs,
	// secrets); Run reads them here instead of the process environment.
	Env map[string]string
	// HTTPAddr serves /metrics, /healthz and /readyz; default 127.0.0.1:0.
	HTTPAddr string
	// DrainTimeout bounds Stop; default 10s.
	DrainTimeout time.Duration
	// RetentionInterval is how often retention runs (the retention:
	// block); default that of `run`, a minute.
	RetentionInterval time.Duration
	// GaugeInterval is how often the leader refreshes the database-wide
	// gauges (queue depth, DLQ size, lag, healthy listeners); default
	// daemon.GaugeIntervalDefault.
	GaugeInterval time.Duration
}

// Observer is fraiseql-observers running inside the test process: the same
// daemon `fraiseql-observers run` runs, with the built-in action types and
// any type the test registered. Its log is kept and printed when the test
// fails.
type Observer struct {
	d   *daemon.Daemon
	log *lockedBuffer
}

// Run starts the observer for the test and stops it (draining in-flight
// deliveries) on cleanup. It fails the test when the configuration is
// invalid or the database cannot be reached. Call WaitLeader before writing
// changes whose deliveries the test waits for with a deadline.
func Run(t testing.TB, o Options) *Observer {
	t.Helper()
	path := o.ConfigPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "observers.yaml")
		if err := os.WriteFile(path, []byte(o.Config), 0o600); err != nil {
			t.Fatalf("observertest: write config: %v", err)
		}
	}
	buf := &lockedBuffer{}
	env := o.Env
	d, err := daemon.New(context.Background(), daemon.Options{
		ConfigPath: path, DatabaseURL: o.DatabaseURL, HTTPAddr: cmp.Or(o.HTTPAddr, "127.0.0.1:0"),
		Logger: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		DrainTimeout: cmp.Or(o.DrainTimeout, 10*time.Second), Version: "observertest", RetentionInterval: o.RetentionInterval,
		GaugeInterval: o.GaugeInterval,
	})
	if err != nil {
		t.Fatalf("observertest: %+v\n%s", err, buf.String())
	}
	if err := d.Start(context.Background()); err != nil {
		d.Stop()
		t.Fatalf("observertest: start: %+v\n%s", err, buf.String())
	}
	ob := &Observer{d: d, log: buf}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("observertest: the observer's log:\n%s", buf.String())
		}
	})
	return ob
}

// WaitLeader waits until the observer leads its listener group (it reads
// the change log from then on), or ctx ends.
func (o *Observer) WaitLeader(ctx context.Context) error {
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	for !o.d.Leading() {
		select {
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "observertest: the observer did not become leader\n%s", o.log.String())
		case <-tick.C:
		}
	}
	return nil
}

// HTTPAddr is the address of its /metrics, /healthz and /readyz.
func (o *Observer) HTTPAddr() string { return o.d.HTTPAddr() }

// Log returns everything the observer logged so far.
func (o *Observer) Log() string { return o.log.String() }

// Stop drains and stops the observer before the test ends (cleanup does
// it otherwise). Safe to call twice.
func (o *Observer) Stop() { o.d.Stop() }

// Migrate creates or updates the observer's tables (and River's) in the
// database at pool, as `fraiseql-observers migrate` does.
func Migrate(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := obsql.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatalf("observertest: migrate: %+v", err)
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
