package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/buildinfo"
	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
)

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
	cmd.Flags().StringVar(&opts.HTTPAddr, "http-addr", "127.0.0.1:8000", "admin HTTP address (/healthz, /readyz, /metrics, River UI at /riverui/; credentials from the admin: block); empty disables it")
	cmd.Flags().StringVar(&opts.LogLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&opts.LogFormat, "log-format", "text", "text or json")
	cmd.Flags().BoolVar(&opts.WatchConfig, "watch-config", true, "reload the configuration when the file changes (SIGHUP always reloads)")
	cmd.Flags().DurationVar(&opts.StandbyRetry, "standby-retry", listener.StandbyRetryDefault, "how often a standby tries to take over from a leader that died without handing over")
	cmd.Flags().BoolVar(&opts.Pprof, "pprof", false, "serve Go's /debug/pprof/ on the admin HTTP address (for profiling)")
	cmd.Flags().DurationVar(&opts.DrainTimeout, "drain-timeout", daemon.DrainTimeoutDefault, "how long shutdown waits for in-flight jobs before cancelling them")
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

// runDaemon runs the daemon until ctx ends (SIGINT/SIGTERM), then drains.
// It returns nil after a clean shutdown.
func runDaemon(ctx context.Context, o *runOpts, logOut io.Writer) error {
	err := daemon.Run(ctx, daemon.Options{
		ConfigPath: o.ConfigPath, DatabaseURL: o.DatabaseURL, HTTPAddr: o.HTTPAddr, Pprof: o.Pprof,
		Logger: newLogger(logOut, o.LogLevel, o.LogFormat), Getenv: os.LookupEnv,
		WatchConfig: o.WatchConfig, HandleSIGHUP: true, StandbyRetry: o.StandbyRetry,
		DrainTimeout: o.DrainTimeout, Version: buildinfo.Version(), BeforeCommit: faultBeforeCommit(),
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, daemon.ErrUnreachable):
		return withExitCode(exitUsage, err)
	}
	return withExitCode(exitFailure, err)
}
