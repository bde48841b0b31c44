package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers"
)

// Helpers shared by the operator commands (dlq, debug-event, metrics,
// replay, retention): connecting, flags that take ages, JSON output and
// progress.

// openDB connects to databaseURL and checks that it holds the schema. Errors
// carry their exit code: 2 when the database cannot be reached, 1 when it
// has no fraiseql-observers schema or one older than the binary.
func openDB(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, withExitCode(exitUsage, errors.WithHint(errors.New("--database-url is empty"), "pass --database-url or set DATABASE_URL"))
	}
	pool, err := daemon.Connect(ctx, databaseURL)
	if err != nil {
		return nil, withExitCode(exitUsage, err)
	}
	if err := daemon.CheckSchemaCurrent(ctx, pool); err != nil {
		pool.Close()
		return nil, withExitCode(exitFailure, err)
	}
	return pool, nil
}

// parseAge reads a positive age flag such as --since 24h or --older-than
// 30d (units: ms, s, m, h, d, w).
func parseAge(flag, s string) (time.Duration, error) {
	d, err := observers.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.Newf("%s must be positive", s)
	}
	if err != nil {
		return 0, withExitCode(exitUsage, errors.WithHint(errors.Wrapf(err, "--%s", flag),
			"use a duration with a unit, such as 90m, 24h, 7d or 2w"))
	}
	return d, nil
}

// writeJSON writes v indented, for --format json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return errors.Wrap(enc.Encode(v), "write output")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress reports long work (retry-all, replay, remove --all): a progress
// bar on a terminal, plain lines otherwise (at most one per
// progressLineEvery, and one at the end), so logs of a cron job or CI stay
// readable. Safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	w     io.Writer
	what  string
	total int64
	done  int64
	last  time.Time
	start time.Time
}

// progressLineEvery spaces the plain progress lines.
const progressLineEvery = 2 * time.Second

// newProgress starts reporting on w (the command's stderr) work of total
// units (-1 when unknown) described by what ("retrying", "replaying").
func newProgress(w io.Writer, total int64, what string) *progress {
	p := &progress{w: w, what: what, total: total, start: time.Now(), last: time.Now()}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// Add records n more units done.
func (p *progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if p.bar != nil {
		_ = p.bar.Add(n)
		return
	}
	if time.Since(p.last) >= progressLineEvery {
		p.last = time.Now()
		p.line()
	}
}

// Finish ends the report with a last line.
func (p *progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	p.line()
}

func (p *progress) line() {
	el := time.Since(p.start)
	rate := float64(p.done) / max(el.Seconds(), 1e-3)
	if p.total >= 0 {
		fmt.Fprintf(p.w, "%s: %d of %d (%.0f%%), %.0f/s, %s\n", p.what, p.done, p.total,
			100*float64(p.done)/float64(max(p.total, 1)), rate, el.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(p.w, "%s: %d, %.0f/s, %s\n", p.what, p.done, rate, el.Round(time.Millisecond))
}
