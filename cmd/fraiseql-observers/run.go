package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	storeredis "github.com/fraiseql/fraiseql-observers/storage/redis"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// drainTimeoutDefault bounds how long shutdown waits for in-flight jobs.
const drainTimeoutDefault = 30 * time.Second

type runOpts struct {
	ConfigPath   string
	DatabaseURL  string
	HTTPAddr     string
	LogLevel     string
	LogFormat    string
	DrainTimeout time.Duration
	Pprof        bool
	StandbyRetry time.Duration
	WatchConfig  bool
}

func (o *runOpts) Validate() error {
	if o.ConfigPath == "" {
		return errors.WithHint(errors.New("--config is required"), "pass --config observers.yaml")
	}
	if _, err := parseLogLevel(o.LogLevel); err != nil {
		return err
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return errors.WithHint(errors.Newf("--log-format %q is not supported", o.LogFormat), "use text or json")
	}
	return nil
}

func newRunCmd() *cobra.Command {
	opts := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the listener and the action workers until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDaemon(ctx, opts, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&opts.ConfigPath, "config", "c", "observers.yaml", "observer configuration file")
	databaseURLFlag(cmd, &opts.DatabaseURL)
	cmd.Flags().StringVar(&opts.HTTPAddr, "http-addr", "127.0.0.1:8000", "admin HTTP address (/healthz, /readyz, /metrics); empty disables it")
	cmd.Flags().StringVar(&opts.LogLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&opts.LogFormat, "log-format", "text", "text or json")
	cmd.Flags().BoolVar(&opts.WatchConfig, "watch-config", true, "reload the configuration when the file changes (SIGHUP always reloads)")
	cmd.Flags().DurationVar(&opts.StandbyRetry, "standby-retry", observers.StandbyRetryDefault, "how often a standby tries to take over from a leader that died without handing over")
	cmd.Flags().BoolVar(&opts.Pprof, "pprof", false, "serve Go's /debug/pprof/ on the admin HTTP address (for profiling)")
	cmd.Flags().DurationVar(&opts.DrainTimeout, "drain-timeout", drainTimeoutDefault, "how long shutdown waits for in-flight jobs before cancelling them")
	return cmd
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, errors.WithHint(errors.Newf("--log-level %q is not a level", s), "use debug, info, warn or error")
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	lvl, _ := parseLogLevel(level)
	ho := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// runDaemon wires the process: config, pool, River client, listener, admin
// HTTP. It returns nil after a clean shutdown.
func runDaemon(ctx context.Context, o *runOpts, logOut io.Writer) error {
	logger := newLogger(logOut, o.LogLevel, o.LogFormat)

	cfg, diags, err := observers.Load(o.ConfigPath)
	for _, d := range diags {
		logger.Warn("config: " + d.String())
	}
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	if err := cfg.Resolve(os.LookupEnv); err != nil {
		return withExitCode(exitFailure, err)
	}

	pool, err := connectPool(ctx, o.DatabaseURL)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	defer pool.Close()
	if err := checkSchema(ctx, pool); err != nil {
		return withExitCode(exitFailure, err)
	}
	if cfg.ObserversTable != "" { // reload.go
		cfg, diags, err = withTableObservers(ctx, pool, cfg)
		for _, d := range diags {
			logger.Warn("config: " + d.String())
		}
		if err == nil {
			err = cfg.Resolve(os.LookupEnv)
		}
		if err != nil {
			return withExitCode(exitFailure, err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := observers.NewMetrics(reg)

	configs := obsriver.NewConfigStore(pool)
	ver, err := configs.Register(ctx, cfg)
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	webhooks := observers.NewWebhookClient(observers.WebhookClientConfig{
		AllowPrivateTargets: cfg.AllowPrivateTargets,
		UserAgent:           "fraiseql-observers/" + version,
	})
	mailer := observers.NewMailer(observers.MailerConfig{Getenv: os.LookupEnv})
	stores, err := openStores(ctx, cfg, pool, metrics, logger)
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	defer stores.Close()
	breakers, err := observers.NewBreakerRegistry(observers.BreakerRegistryConfig{
		Store: stores.Breaker, Metrics: observers.NewBreakerMetrics(reg), Logger: logger,
	})
	if err != nil {
		return withExitCode(exitFailure, err)
	}

	events := obsriver.NewEventLoader(pool) // the listener's reads serve the workers
	client, err := obsriver.NewClient(obsriver.ClientParams{
		WorkerParams: obsriver.WorkerParams{
			Pool: pool, Configs: configs, Events: events, Webhooks: webhooks, Mailer: mailer, Breakers: breakers, Metrics: metrics, Logger: logger,
			Cache: stores.Cache, // used for versions with a cache: block
			Redis: stores.Redis, Search: stores.Search,
		},
		Config:   cfg,
		Cleanups: stores.Cleanups, // a River periodic job on the group's River leader
	})
	if err != nil {
		return withExitCode(exitFailure, err)
	}

	var ready atomic.Bool
	var srv *http.Server
	httpAddr := ""
	if o.HTTPAddr != "" {
		ln, err := net.Listen("tcp", o.HTTPAddr)
		if err != nil {
			return withExitCode(exitUsage, errors.WithHint(errors.Wrapf(err, "listen on --http-addr %s", o.HTTPAddr),
				"another process uses that port; pick another with --http-addr, or --http-addr '' to disable"))
		}
		httpAddr = ln.Addr().String()
		srv = &http.Server{Handler: adminMux(reg, pool, &ready, o.Pprof), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("admin: HTTP server stopped", slog.String("error", err.Error()))
			}
		}()
	}

	listener, err := observers.NewListener(observers.ListenerParams{
		Pool: pool, Config: cfg, ConfigVersion: ver.ID, Enqueuer: obsriver.NewEnqueuer(client, cfg.Concurrency.DeliveriesPerJob, events),
		Logger: logger, Metrics: metrics, HTTPAddr: httpAddr, Version: version, StandbyRetry: o.StandbyRetry,
		BeforeCommit: faultBeforeCommit(),
		Dedup:        stores.Dedup,
	})
	if err != nil {
		return withExitCode(exitFailure, err)
	}

	// Work jobs with a context that outlives the signal, so a shutdown drains
	// in-flight jobs instead of cancelling them.
	workCtx := context.WithoutCancel(ctx)
	if err := client.Start(workCtx); err != nil {
		return withExitCode(exitFailure, errors.Wrap(err, "start river client"))
	}
	if err := listener.Start(workCtx); err != nil {
		return withExitCode(exitFailure, err)
	}
	ready.Store(true)
	queues := map[string]bool{}
	for name := range obsriver.Queues(cfg) {
		queues[name] = true
	}
	armed := make(chan struct{})
	go (&reloader{path: o.ConfigPath, watch: o.WatchConfig, logger: logger, configs: configs, pool: pool,
		listener: listener, current: cfg, client: client, queues: queues}).run(ctx, armed)
	<-armed
	logger.Info("run: started", slog.String("instance_id", listener.InstanceID()),
		slog.String("listener_id", cfg.Listener.ID), slog.Int("observers", len(cfg.Observers)),
		slog.Int64("config_version", ver.ID), slog.String("http_addr", httpAddr), slog.String("version", version))

	<-ctx.Done()
	ready.Store(false)
	logger.Info("run: shutting down; draining in-flight jobs", slog.Duration("drain_timeout", o.DrainTimeout))
	listener.Stop()
	drainCtx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	if err := client.Stop(drainCtx); err != nil {
		logger.Warn("run: drain timed out; cancelling the remaining jobs (they will be retried)")
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = client.StopAndCancel(cctx)
		ccancel()
	}
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	logger.Info("run: stopped")
	return nil
}

// daemonStores are the storage layers chosen by the configuration.
type daemonStores struct {
	Dedup    storage.Dedup        // nil when dedup is off
	Cache    storage.Cache        // instrumented; the action result cache (river/cache.go)
	Breaker  storage.BreakerStore // circuit-breaker state (circuit_breaker.backend)
	Redis    goredis.Cmdable      // the redis: block's client (cache actions); nil without redis.url
	Search   storage.Search       // documents of search actions
	Cleanups []obsriver.Cleanup   // expired dedup keys, cache rows, claim tokens
	Close    func()
}

// openStores makes the Redis client (when redis.url is set; one client for
// every Redis-backed layer) and the dedup, cache and breaker stores. An unreachable
// Redis is logged, not fatal: dedup.on_error decides at each batch.
func openStores(ctx context.Context, cfg *observers.Config, pool *pgxpool.Pool, m *observers.Metrics, logger *slog.Logger) (*daemonStores, error) {
	s := &daemonStores{Close: func() {}}
	var rdb *goredis.Client
	if cfg.Redis.URL != "" {
		c, err := storeredis.NewClient(cfg.Redis.URL)
		if err != nil {
			return nil, err
		}
		rdb, s.Redis, s.Close = c, c, func() { _ = c.Close() }
		if err := storeredis.Ping(ctx, c); err != nil {
			logger.Warn("run: Redis does not answer; Redis-backed layers degrade until it does", slog.String("error", err.Error()))
		}
	}
	if cfg.Dedup.Enabled {
		if cfg.Dedup.Backend == observers.BackendRedis {
			s.Dedup = storeredis.NewDedup(rdb, pool, storeredis.DedupConfig{Window: cfg.Dedup.Window, Prefix: cfg.Redis.KeyPrefix + "dedup:"})
		} else {
			s.Dedup = postgres.NewDedup(pool, postgres.DedupConfig{Window: cfg.Dedup.Window})
		}
		s.Cleanups = append(s.Cleanups, s.Dedup.Cleanup)
	}
	pgBreaker := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	s.Breaker = pgBreaker
	if cfg.CircuitBreakerBackend == observers.BackendRedis {
		// status reads observer_circuit_breakers: mirror each state write there.
		s.Breaker = storeredis.NewBreakerStore(rdb, storeredis.BreakerStoreConfig{
			Prefix: cfg.Redis.KeyPrefix + "breaker:", Mirror: pgBreaker.SetData, Logger: logger,
		})
	}
	if cfg.Cache.Backend == observers.BackendRedis {
		s.Cache = observers.InstrumentCache(storeredis.NewCache(rdb, storeredis.CacheConfig{Prefix: cfg.Redis.KeyPrefix + "cache:"}), m)
	} else {
		pc := postgres.NewCache(pool)
		s.Cache = observers.InstrumentCache(pc, m)
		s.Cleanups = append(s.Cleanups, pc.Cleanup)
	}
	s.Search = postgres.NewSearch(pool)
	return s, nil
}
