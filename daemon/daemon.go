package daemon

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/fraiseql/fraiseql-observers/buildinfo"
	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin" // every built-in action type
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/observers/breaker"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/observers/ratelimit"
	"github.com/fraiseql/fraiseql-observers/observers/resultcache"
	"github.com/fraiseql/fraiseql-observers/retention"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// Defaults of Options.
const (
	DrainTimeoutDefault = 30 * time.Second
)

// Options configures a Daemon.
type Options struct {
	// ConfigPath is the observers YAML file; required.
	ConfigPath string
	// DatabaseURL is the Postgres the change log, the checkpoints and
	// River's jobs live in; required.
	DatabaseURL string
	// HTTPAddr is the admin server's address (/healthz, /readyz, /metrics,
	// River UI at /riverui/; everything but /healthz behind the admin:
	// block's credentials when it sets any); "" runs none. Port 0 picks a free one (HTTPAddr reports it).
	HTTPAddr string
	// Pprof serves Go's /debug/pprof/ on the admin server.
	Pprof bool
	// Logger receives every log line; default discard.
	Logger *slog.Logger
	// Getenv reads the *_env variables; default os.LookupEnv.
	Getenv func(string) (string, bool)
	// WatchConfig reloads the file when it changes (SIGHUP always reloads).
	WatchConfig bool
	// HandleSIGHUP reloads on SIGHUP. `run` sets it; an in-process daemon
	// (tests) usually does not.
	HandleSIGHUP bool
	// StandbyRetry is how often a standby tries to take over from a leader
	// that died without handing over; default listener.StandbyRetryDefault.
	StandbyRetry time.Duration
	// DrainTimeout bounds how long Stop waits for in-flight jobs before
	// cancelling them (they are retried); default 30s.
	DrainTimeout time.Duration
	// Version is the build version logged at start, shown in
	// observer_listeners and sent in the User-Agent; default
	// buildinfo.Version(), the binary's module version.
	Version string
	// BeforeCommit runs inside every enqueue transaction (fault injection).
	BeforeCommit func(ctx context.Context, batch int) error
	// Registry receives the metrics; default a new one with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// RetentionInterval is how often retention runs; default
	// river.RetentionIntervalDefault (tests shorten it).
	RetentionInterval time.Duration
	// GaugeInterval is how often the listener leader refreshes the
	// database-wide gauges; default GaugeIntervalDefault (tests shorten it).
	GaugeInterval time.Duration
}

// Daemon is one `fraiseql-observers run` process: the pool, the River
// client and its workers, the listener, the reloader and the admin HTTP
// server. New wires it; Start runs it; Stop drains it.
type Daemon struct {
	o         Options
	logger    *slog.Logger
	pool      *pgxpool.Pool
	cfg       *observers.Config
	version   *obsriver.Version
	configs   *obsriver.ConfigStore
	queues    *obsriver.QueueSet
	stores    *stores
	env       *observers.Env
	client    *river.Client[pgx.Tx]
	listener  *listener.Listener
	retention *retention.Runner
	reloader  *reloader
	gauges    *gaugeRefresher
	reg       *prometheus.Registry

	ready    atomic.Bool
	adminLn  net.Listener
	srv      *http.Server
	httpAddr string
	admin    observers.AdminCredentials // the admin: block's, resolved
	riverUI  *riverui.Handler           // nil when admin.riverui is false or no admin server runs
	uiServe  http.Handler               // riverUI, read-only unless admin.riverui_write
	uiStop   context.CancelFunc

	stopOnce sync.Once
}

// New loads the configuration, connects to the database and wires every
// service; nothing runs until Start. Errors that mean "cannot reach" (the
// database) are marked ErrUnreachable.
func New(ctx context.Context, o Options) (*Daemon, error) {
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	// Lines logged while a delivery runs name it (observers.WithDelivery).
	o.Logger = slog.New(observers.LogHandler(o.Logger.Handler()))
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	o.DrainTimeout = cmp.Or(o.DrainTimeout, DrainTimeoutDefault)
	o.Version = cmp.Or(o.Version, buildinfo.Version())
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	d := &Daemon{o: o, logger: o.Logger, reg: o.Registry}
	pool, err := Connect(ctx, o.DatabaseURL)
	if err != nil {
		return nil, err
	}
	d.pool = pool
	if err := d.wire(ctx); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// wire loads the configuration and builds the services.
func (d *Daemon) wire(ctx context.Context) error {
	if err := CheckSchema(ctx, d.pool); err != nil {
		return err
	}
	cfg, diags, err := observers.LoadConfig(ctx, d.o.ConfigPath, d.loadOptions())
	for _, dg := range diags {
		d.logger.Warn("config: " + dg.String())
	}
	if err != nil {
		return err
	}
	d.cfg = cfg
	if err := checkChangeLog(ctx, d.pool, cfg.Listener.Table); err != nil {
		return err
	}
	if err := d.listenAdmin(); err != nil {
		return err
	}
	d.configs = obsriver.NewConfigStore(d.pool)
	if d.version, err = d.configs.Register(ctx, cfg); err != nil {
		return err
	}
	if d.stores, err = openStores(ctx, cfg, d.pool, d.logger); err != nil {
		return err
	}
	if err := d.wireEnv(); err != nil {
		return err
	}
	d.retention, err = retention.New(retention.Params{
		DB: d.pool, Config: cfg.Retention, ChangeLog: cfg.Listener.Table,
		Metrics: retention.NewMetrics(d.reg), Logger: d.logger,
	})
	if err != nil {
		return err
	}
	events := obsriver.NewEventLoader(d.pool) // the listener's reads serve the workers
	d.queues = obsriver.NewQueueSet(cfg)
	riverGauges := obsriver.NewGauges(d.reg, d.queues.Names)
	d.client, err = obsriver.NewClient(obsriver.ClientParams{
		WorkerParams: obsriver.WorkerParams{
			Pool: d.pool, Configs: d.configs, Events: events, Env: d.env, Logger: d.logger,
			Metrics: obsriver.NewMetrics(d.reg),
		},
		Config:    cfg,
		Cleanups:  d.stores.Cleanups, // River periodic jobs on the group's River leader
		Retention: d.retention.Run, RetentionInterval: d.o.RetentionInterval,
	})
	if err != nil {
		return err
	}
	d.listener, err = listener.New(listener.Params{
		Pool: d.pool, Config: cfg, ConfigVersion: d.version.ID,
		Enqueuer: obsriver.NewEnqueuer(obsriver.EnqueuerParams{Client: d.client, DeliveriesPerJob: cfg.Concurrency.DeliveriesPerJob, Events: events}),
		Logger:   d.logger, Metrics: listener.NewMetrics(d.reg), HTTPAddr: d.httpAddr, Version: d.o.Version,
		Queues: d.queues.Snapshot, StandbyRetry: d.o.StandbyRetry,
		BeforeCommit: d.o.BeforeCommit, Dedup: d.stores.Dedup,
	})
	if err != nil {
		return err
	}
	d.reloader = newReloader(d)
	d.gauges = &gaugeRefresher{
		interval: cmp.Or(d.o.GaugeInterval, GaugeIntervalDefault), listener: d.listener,
		river: riverGauges, pool: d.pool, logger: d.logger,
	}
	return d.wireAdmin()
}

// wireAdmin reads the admin server's credentials and builds River UI.
func (d *Daemon) wireAdmin() error {
	if d.adminLn == nil {
		return nil
	}
	var err error
	if d.admin, err = d.cfg.Admin.ResolvedCredentials(d.o.Getenv); err != nil {
		return err
	}
	if d.cfg.Admin.RiverUI {
		d.riverUI, d.uiServe, err = newRiverUI(d.client, d.logger, d.cfg.Admin.RiverUIWrite)
	}
	return err
}

// wireEnv builds the services deliveries use.
func (d *Daemon) wireEnv() error {
	breakers, err := breaker.New(breaker.Config{
		Store: d.stores.Breaker, Metrics: breaker.NewMetrics(d.reg), Logger: d.logger,
	})
	if err != nil {
		return err
	}
	results, err := resultcache.New(resultcache.Config{Store: d.stores.Cache, Registerer: d.reg, Logger: d.logger})
	if err != nil {
		return err
	}
	limits, err := ratelimit.New(ratelimit.Config{Store: d.stores.RateLimit, Metrics: ratelimit.NewMetrics(d.reg), Logger: d.logger})
	if err != nil {
		return err
	}
	d.env = &observers.Env{
		DB: d.pool,
		HTTP: webhook.NewHTTPClient(webhook.HTTPClientConfig{
			AllowPrivateTargets: d.cfg.AllowPrivateTargets, UserAgent: observers.UserAgentDefault + "/" + d.o.Version,
			MaxInFlight: d.cfg.Concurrency.MaxInFlight, Metrics: webhook.NewMetrics(d.reg),
		}),
		Breakers: breakers, RateLimits: limits, Results: results, Search: d.stores.Search, Invalidator: d.stores.Invalidator,
		Logger: d.logger, Getenv: d.o.Getenv,
	}
	return nil
}

// loadOptions is how `run` and its reloader load the configuration: with
// the observers_table rows (its NOTIFY trigger attached first, so a change
// after the read is not missed) and every variable resolved.
func (d *Daemon) loadOptions() observers.LoadOptions {
	return observers.LoadOptions{Getenv: d.o.Getenv, Resolve: true, Rows: d.readTable}
}

// readTable attaches the NOTIFY trigger of the observers_table and reads
// its rows.
func (d *Daemon) readTable(ctx context.Context, table string) ([]observers.TableObserver, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.pool.Exec(qctx, `SELECT observers.attach_config_notify($1::text::regclass)`, table); err != nil {
		return nil, errors.WithHint(errors.Wrapf(err, "watch observers_table %s", table),
			"the table must exist, and `fraiseql-observers migrate` must have run against this database")
	}
	return observers.ReadTableObservers(qctx, d.pool, table)
}

// Start runs the daemon: the River client, the listener, the reloader and
// the admin server. It returns once the configuration is watched and the
// process is ready, having logged "run: started".
func (d *Daemon) Start(ctx context.Context) error {
	d.serveAdmin()
	// Work jobs with a context that outlives ctx, so a shutdown drains
	// in-flight jobs instead of cancelling them.
	workCtx := context.WithoutCancel(ctx)
	if err := d.client.Start(workCtx); err != nil {
		return errors.Wrap(err, "start river client")
	}
	if err := d.listener.Start(workCtx); err != nil {
		return err
	}
	d.ready.Store(true)
	if err := d.reloader.Start(ctx); err != nil {
		return err
	}
	if err := d.gauges.Start(workCtx); err != nil {
		return err
	}
	d.logger.Info("run: started", slog.String("instance_id", d.listener.InstanceID()),
		slog.String("listener_id", d.cfg.Listener.ID), slog.Int("observers", len(d.cfg.Observers)),
		slog.Int64("config_version", d.version.ID), slog.String("http_addr", d.httpAddr), slog.String("version", d.o.Version))
	return nil
}

// listenAdmin binds the admin server's address, when one is set.
func (d *Daemon) listenAdmin() error {
	if d.o.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.o.HTTPAddr)
	if err != nil {
		return errors.Mark(errors.WithHint(errors.Wrapf(err, "listen on --http-addr %s", d.o.HTTPAddr),
			"another process uses that port; pick another with --http-addr, or --http-addr '' to disable"), ErrUnreachable)
	}
	d.adminLn, d.httpAddr = ln, ln.Addr().String()
	return nil
}

// serveAdmin serves the admin HTTP server on its bound address.
func (d *Daemon) serveAdmin() {
	if d.adminLn == nil {
		return
	}
	mux := adminMux(d.reg, d.pool, &d.ready, d.listener.Health, d.o.Pprof)
	if d.riverUI != nil {
		uiCtx, cancel := context.WithCancel(context.Background())
		d.uiStop = cancel
		if err := startRiverUI(uiCtx, d.riverUI); err != nil {
			d.logger.Error("admin: River UI not served", slog.String("error", err.Error()))
		} else {
			mux.Handle(RiverUIPrefix+"/", d.uiServe)
		}
	}
	d.srv = &http.Server{Handler: requireAuth(mux, d.admin), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := d.srv.Serve(d.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.logger.Error("admin: HTTP server stopped", slog.String("error", err.Error()))
		}
	}()
}

// HTTPAddr is the admin server's address ("" when it runs none).
func (d *Daemon) HTTPAddr() string { return d.httpAddr }

// Leading reports whether this daemon leads its listener group.
func (d *Daemon) Leading() bool { return d.listener.Role() == listener.RoleLeader }

// InstanceID identifies the process in observer_listeners.
func (d *Daemon) InstanceID() string { return d.listener.InstanceID() }

// Stop shuts the daemon down: the reloader and the listener stop (a
// standby takes over at once), in-flight jobs drain for up to DrainTimeout
// and are then cancelled (River retries them), the admin server closes.
// Safe to call twice.
func (d *Daemon) Stop() {
	d.stopOnce.Do(func() {
		d.ready.Store(false)
		d.logger.Info("run: shutting down; draining in-flight jobs", slog.Duration("drain_timeout", d.o.DrainTimeout))
		d.reloader.Stop()
		d.gauges.Stop()
		d.listener.Stop()
		drainCtx, cancel := context.WithTimeout(context.Background(), d.o.DrainTimeout)
		defer cancel()
		if err := d.client.Stop(drainCtx); err != nil {
			d.logger.Warn("run: drain timed out; cancelling the remaining jobs (they will be retried)")
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = d.client.StopAndCancel(cctx)
			ccancel()
		}
		if d.srv != nil {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.srv.Shutdown(sctx)
			scancel()
		}
		if d.uiStop != nil {
			d.uiStop()
		}
		d.env.HTTP.CloseIdleConnections()
		d.close()
		d.logger.Info("run: stopped")
	})
}

// close releases what New opened.
func (d *Daemon) close() {
	if d.adminLn != nil && d.srv == nil {
		_ = d.adminLn.Close() // never served
	}
	if d.stores != nil {
		d.stores.Close()
	}
	d.pool.Close()
}

// Run is `fraiseql-observers run`: New, Start, and Stop once ctx ends. It
// returns nil after a clean shutdown.
func Run(ctx context.Context, o Options) error {
	d, err := New(ctx, o)
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		d.Stop()
		return err
	}
	<-ctx.Done()
	d.Stop()
	return nil
}
