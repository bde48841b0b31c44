package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observertest"
	obsql "github.com/fraiseql/fraiseql-observers/sql"
)

// appName tags the connections of the process under test so the bench can
// count them in pg_stat_activity.
const appName = "fraiseql-observers-bench"

// database is a fresh, migrated database for one scenario.
type database struct {
	name string
	url  string
	pool *pgxpool.Pool
}

func withDatabase(u *url.URL, name string) string {
	c := *u
	c.Path = "/" + name
	return c.String()
}

// newDatabase creates and migrates database name; drop removes it.
func newDatabase(ctx context.Context, admin string, name string) (*database, error) {
	au, err := url.Parse(admin)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", au.Redacted(), err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return nil, err
	}
	db := &database{name: name, url: withDatabase(au, name)}
	pc, err := pgxpool.ParseConfig(db.url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 16
	if db.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	if _, err := obsql.Migrate(ctx, db.pool, nil); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	// Start from a settled server: without this, the write-back of the
	// previous scenario's WAL (1.5 GB for fanout-single) lands in this one,
	// as fsync stalls of hundreds of milliseconds. Needs superuser or
	// pg_checkpoint; without them the scenario runs unsettled.
	if _, err := db.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: CHECKPOINT before %s: %v (running unsettled)\n", name, err)
	}
	return db, nil
}

func (d *database) drop(ctx context.Context, admin string) {
	d.pool.Close()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)")
}

// walLSN returns the current WAL position in bytes.
func walLSN(ctx context.Context, pool *pgxpool.Pool) int64 {
	var n int64
	_ = pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&n)
	return n
}

// leaderWait bounds the wait for the process under test to lead.
const leaderWait = 60 * time.Second

// startRun starts the binary with config against dbURL (its connections
// tagged with appName) and waits until it leads its listener group. The
// caller stops it; on error it is already gone.
func startRun(ctx context.Context, bin string, db *database, config string, extraArgs ...string) (*observertest.Process, error) {
	u, err := url.Parse(db.url)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()
	p, err := observertest.Spawn(context.WithoutCancel(ctx), observertest.ProcessOptions{
		Binary: bin, Config: config, DatabaseURL: u.String(), LogLevel: "warn",
		Args: append([]string{"--log-format", "text"}, extraArgs...),
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	if err := p.WaitLeader(wctx, db.pool); err != nil {
		stop(p)
		return nil, err
	}
	return p, nil
}

// stop sends SIGTERM and waits (killing it after 30s).
func stop(p *observertest.Process) { _ = p.Stop(30 * time.Second) }

// procStats reads CPU time (seconds) and peak/current RSS (bytes) of pid.
type procStats struct {
	CPUSeconds float64
	PeakRSS    int64
	RSS        int64
}

func readProcStats(pid int) procStats {
	var s procStats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which is in parentheses).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 13 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			s.CPUSeconds = (ut + st) / 100 // USER_HZ is 100 on Linux
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmHWM":
				s.PeakRSS = kb * 1024
			case "VmRSS":
				s.RSS = kb * 1024
			}
		}
	}
	return s
}

// connections counts the process's Postgres connections.
func connections(ctx context.Context, pool *pgxpool.Pool) int {
	var n int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, appName).Scan(&n)
	return n
}

// newReceiver is the bench's webhook endpoint, observertest's lean mode: it
// verifies nothing and only counts deliveries (with track, also the first
// arrival of each id of a {"id": "..."} body); delay is slept per request.
func newReceiver(delay time.Duration, track bool) (*observertest.Receiver, error) {
	return observertest.ListenReceiver(observertest.ReceiverOptions{CountOnly: true, Delay: delay, Track: track})
}
