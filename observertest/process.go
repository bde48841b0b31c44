package observertest

import (
	"cmp"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
)

// Defaults of ProcessOptions.
const (
	// HTTPAddrDefault lets the process pick a free loopback port; HTTPAddr
	// reads it back.
	HTTPAddrDefault = "127.0.0.1:0"
	// LogLevelDefault is the lowest level at which Started fires: the line it
	// waits for is logged at info.
	LogLevelDefault = "info"
	// TailLinesDefault is how many lines Tail returns.
	TailLinesDefault = 50
)

// StartTimeout bounds StartProcess's wait for the process to start.
const StartTimeout = 60 * time.Second

// killWait bounds how long Kill waits for the process to be gone.
const killWait = 30 * time.Second

// leaderPoll is how often WaitLeader reads observer_listeners.
const leaderPoll = 50 * time.Millisecond

// ProcessOptions configures one `fraiseql-observers run`.
type ProcessOptions struct {
	// Binary is the fraiseql-observers executable (see BuildBinary). Required.
	Binary string
	// Config is the configuration's YAML text. It is written to a file in a
	// new temporary directory, removed once the process has exited. Exactly
	// one of Config and ConfigPath is set.
	Config string
	// ConfigPath is an existing configuration file, used as it is.
	ConfigPath string
	// DatabaseURL is passed as --database-url. Required.
	DatabaseURL string
	// HTTPAddr is passed as --http-addr. Default HTTPAddrDefault. To disable
	// the admin server, append "--http-addr", "" to Args.
	HTTPAddr string
	// LogLevel is passed as --log-level. Default LogLevelDefault. At warn and
	// error Started never fires; wait with WaitLeader instead.
	LogLevel string
	// DrainTimeout, when set, is passed as --drain-timeout (the binary's own
	// default is 30s).
	DrainTimeout time.Duration
	// Args are appended to the command line, e.g. "--standby-retry", "1s".
	Args []string
	// Env is appended to this process's environment ("NAME=value"), e.g. the
	// variables named by the configuration's *_env keys.
	Env []string
	// LogFile, when set, receives every line the process logs, and only the
	// last TailLines lines stay in memory; Log reads the file back. Use it
	// for long runs with many processes. When empty, the whole log stays in
	// memory.
	LogFile string
	// TailLines is how many of the last lines Tail returns. Default
	// TailLinesDefault.
	TailLines int
	// LogOutput, when set, also receives every line as it is read, e.g.
	// os.Stderr to show the log live.
	LogOutput io.Writer
}

// WithDefaults returns the options with every unset default filled in.
func (o ProcessOptions) WithDefaults() ProcessOptions {
	o.HTTPAddr = cmp.Or(o.HTTPAddr, HTTPAddrDefault)
	o.LogLevel = cmp.Or(o.LogLevel, LogLevelDefault)
	o.TailLines = cmp.Or(o.TailLines, TailLinesDefault)
	return o
}

func (o ProcessOptions) validate() error {
	switch {
	case o.Binary == "":
		return errors.WithHint(errors.New("observertest: ProcessOptions.Binary is required"),
			"build it with observertest.BuildBinary in TestMain")
	case o.DatabaseURL == "":
		return errors.New("observertest: ProcessOptions.DatabaseURL is required")
	case (o.Config == "") == (o.ConfigPath == ""):
		return errors.New("observertest: set exactly one of ProcessOptions.Config and ProcessOptions.ConfigPath")
	case o.TailLines < 0:
		return errors.New("observertest: ProcessOptions.TailLines must not be negative")
	case o.DrainTimeout < 0:
		return errors.New("observertest: ProcessOptions.DrainTimeout must not be negative")
	}
	return nil
}

// Process is a running `fraiseql-observers run`. Its standard error (the
// log) is read line by line; its standard output is discarded. Every method
// is safe for concurrent use.
type Process struct {
	cmd        *exec.Cmd
	configPath string
	tmpDir     string // removed after exit; "" when ConfigPath was given
	log        *processLog
	started    chan struct{}
	exited     chan struct{}
	exitErr    error // written before exited is closed
}

// Spawn starts `run` and returns without waiting for it to start; see
// Started, WaitStarted and WaitLeader. ctx bounds the life of the process:
// when it is done, the process is killed. Stop or Kill it when done.
func Spawn(ctx context.Context, opts ProcessOptions) (*Process, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	p := &Process{configPath: opts.ConfigPath, started: make(chan struct{}), exited: make(chan struct{})}
	if opts.Config != "" {
		dir, err := os.MkdirTemp("", "fraiseql-observers-run-")
		if err != nil {
			return nil, errors.Wrap(err, "observertest: config directory")
		}
		p.tmpDir, p.configPath = dir, filepath.Join(dir, "observers.yaml")
		if err := os.WriteFile(p.configPath, []byte(opts.Config), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, errors.Wrap(err, "observertest: write config")
		}
	}
	var err error
	if p.log, err = newProcessLog(opts.LogFile, opts.TailLines, opts.LogOutput); err != nil {
		p.removeTmp()
		return nil, err
	}
	p.cmd = exec.CommandContext(ctx, opts.Binary, p.args(opts)...)
	p.cmd.Env = append(os.Environ(), opts.Env...)
	p.cmd.Stdout = io.Discard
	stderr, err := p.cmd.StderrPipe()
	if err == nil {
		err = p.cmd.Start()
	}
	if err != nil {
		p.log.close()
		p.removeTmp()
		return nil, errors.Wrapf(err, "observertest: start %s run", opts.Binary)
	}
	go p.collect(stderr)
	return p, nil
}

func (p *Process) args(o ProcessOptions) []string {
	args := []string{"run", "--config", p.configPath, "--database-url", o.DatabaseURL,
		"--http-addr", o.HTTPAddr, "--log-level", o.LogLevel}
	if o.DrainTimeout > 0 {
		args = append(args, "--drain-timeout", o.DrainTimeout.String())
	}
	return append(args, o.Args...)
}

// collect reads the log until the process closes its standard error, then
// reaps the process.
func (p *Process) collect(stderr io.Reader) {
	p.log.read(stderr, func() { close(p.started) })
	p.exitErr = p.cmd.Wait()
	p.log.close()
	p.removeTmp()
	close(p.exited)
}

func (p *Process) removeTmp() {
	if p.tmpDir != "" {
		_ = os.RemoveAll(p.tmpDir)
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// ConfigPath is the configuration file the process runs with; rewrite it
// to trigger a reload.
func (p *Process) ConfigPath() string { return p.configPath }

// LogPath is ProcessOptions.LogFile ("" when the log is kept in memory).
func (p *Process) LogPath() string { return p.log.path }

// Started is closed once the process has logged "run: started". It never
// closes at log levels above info.
func (p *Process) Started() <-chan struct{} { return p.started }

// Exited is closed once the process has exited and its log has been read.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is the process's exit status as exec.Cmd.Wait reports it (an
// *exec.ExitError for a non-zero exit); nil until the process has exited.
func (p *Process) ExitErr() error {
	select {
	case <-p.exited:
		return p.exitErr
	default:
		return nil
	}
}

// HTTPAddr is the address of the admin server (/metrics, /healthz), read from
// the "run: started" line or, by WaitLeader, from the listener row; "" until
// one of them was seen.
func (p *Process) HTTPAddr() string { return p.log.httpAddr() }

// Log returns everything the process has logged so far (read back from
// LogFile when one is set).
func (p *Process) Log() string { return p.log.all() }

// Tail returns the last TailLines lines the process logged.
func (p *Process) Tail() string { return p.log.tail() }

// Signal sends sig to the process (e.g. syscall.SIGHUP to reload).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// WaitStarted waits until the process logged "run: started"; it fails when
// the process exits first or ctx ends.
func (p *Process) WaitStarted(ctx context.Context) error {
	select {
	case <-p.started:
		return nil
	default:
	}
	select {
	case <-p.started:
		return nil
	case <-p.exited:
		return errors.Newf("run (pid %d) exited before starting: %v\n%s", p.Pid(), p.exitErr, p.Tail())
	case <-ctx.Done():
		return errors.Wrapf(ctx.Err(), "run (pid %d) did not start\n%s", p.Pid(), p.Tail())
	}
}

// Querier is what the database helpers need: *pgxpool.Pool, *pgx.Conn and
// pgx.Tx satisfy it.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// WaitLeader polls observer_listeners (every 50ms) until the process's row
// says it leads its listener group, and records the row's http_addr as
// HTTPAddr. It fails when the process exits first or ctx ends.
func (p *Process) WaitLeader(ctx context.Context, db Querier) error {
	tick := time.NewTicker(leaderPoll)
	defer tick.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var addr string
		err := db.QueryRow(qctx, `SELECT coalesce(http_addr, '') FROM observer_listeners
			WHERE pid = $1 AND role = 'leader' LIMIT 1`, p.Pid()).Scan(&addr)
		cancel()
		if err == nil {
			p.log.setHTTPAddr(addr)
			return nil
		}
		select {
		case <-p.exited:
			return errors.Newf("run (pid %d) exited before leading: %v\n%s", p.Pid(), p.exitErr, p.Tail())
		case <-ctx.Done():
			return errors.Wrapf(ctx.Err(), "run (pid %d) did not become leader\n%s", p.Pid(), p.Tail())
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM and waits up to timeout for the process to exit. It
// returns an error unless the process exits 0 in time; a process still
// running after timeout is killed.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.Signal(syscall.SIGTERM) // fails only when it already exited
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		if p.exitErr != nil {
			return errors.Wrapf(p.exitErr, "run (pid %d) did not exit cleanly after SIGTERM\n%s", p.Pid(), p.Tail())
		}
		return nil
	case <-t.C:
		p.Kill()
		return errors.Newf("run (pid %d) did not exit within %s of SIGTERM; killed\n%s", p.Pid(), timeout, p.Tail())
	}
}

// Kill sends SIGKILL and waits (at most 30s) until the process is gone.
// It is safe to call on a process that has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	}
}

// SpawnProcess is Spawn for a test: it fails the test when the process
// cannot be started, and on cleanup kills it and, when the test failed,
// logs what it logged.
func SpawnProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	p, err := Spawn(context.Background(), opts)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() {
		p.Kill()
		if !t.Failed() {
			return
		}
		if path := p.LogPath(); path != "" {
			t.Logf("log of run (pid %d) in %s; last lines:\n%s", p.Pid(), path, p.Tail())
		} else {
			t.Logf("log of run (pid %d):\n%s", p.Pid(), p.Log())
		}
	})
	return p
}

// StartProcess is SpawnProcess that also waits (at most StartTimeout) until
// the process has started; the test fails when it exits first. LogLevel
// must be info or debug.
func StartProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	p := SpawnProcess(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	select {
	case <-p.Started():
	case <-p.Exited():
		select {
		case <-p.Started(): // started, then exited: the test decides what that means
		default:
			t.Fatalf("run (pid %d) exited before starting: %v", p.Pid(), p.ExitErr())
		}
	case <-ctx.Done():
		t.Fatalf("run (pid %d) did not start within %s", p.Pid(), StartTimeout)
	}
	return p
}
