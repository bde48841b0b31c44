package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// runProc is a `fraiseql-observers run` under test.
type runProc struct {
	cmd      *exec.Cmd
	httpAddr string
	started  chan struct{}
	exited   chan struct{}
	mu       sync.Mutex
	tail     []string
}

// startRun writes config to a file and starts the binary against dbURL.
func startRun(bin, dbURL, config string, extraArgs ...string) (*runProc, error) {
	dir, err := os.MkdirTemp("", "fraiseql-bench-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "observers.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()
	args := append([]string{"run", "--config", path, "--database-url", u.String(), "--http-addr", "127.0.0.1:0", "--log-level", "warn", "--log-format", "text"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	p := &runProc{cmd: cmd, started: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 50 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		os.RemoveAll(dir)
		close(p.exited)
	}()
	return p, nil
}

// waitLeader waits until the process leads its listener group.
func (p *runProc) waitLeader(ctx context.Context, pool *pgxpool.Pool) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var addr *string
		err := pool.QueryRow(ctx, `SELECT http_addr FROM observer_listeners WHERE pid = $1 AND role = 'leader'`, p.cmd.Process.Pid).Scan(&addr)
		if err == nil && addr != nil {
			p.httpAddr = *addr
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("run exited: %s", p.lastLines())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("run did not become leader: %s", p.lastLines())
}

func (p *runProc) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// stop sends SIGTERM and waits.
func (p *runProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

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
