package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// reloadDebounce gathers the several events an editor's save makes.
const reloadDebounce = 200 * time.Millisecond

// reloader puts a changed configuration file in force without a restart: on
// SIGHUP, and when the file changes if watch is set. A file that fails
// validation, or names a secret variable that is unset, is rejected with
// every problem logged; the running configuration stays.
type reloader struct {
	path     string
	watch    bool
	logger   *slog.Logger
	configs  *obsriver.ConfigStore
	listener *observers.Listener
	current  *observers.Config
	client   *river.Client[pgx.Tx]
	queues   map[string]bool // River queues this process works
}

// run blocks until ctx ends.
func (r *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var changed <-chan fsnotify.Event
	if r.watch {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			// Watch the directory: editors replace the file rather than write it.
			err = w.Add(filepath.Dir(r.path))
		}
		if err != nil {
			r.logger.Warn("config: cannot watch the file; reload with SIGHUP", slog.String("file", r.path), slog.String("error", err.Error()))
		} else {
			defer w.Close()
			changed = w.Events
		}
	}
	target := filepath.Clean(r.path)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case ev := <-changed:
			if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce = time.After(reloadDebounce)
			}
		case <-debounce:
			debounce = nil
			r.reload(ctx, "file changed")
		}
	}
}

func (r *reloader) reload(ctx context.Context, why string) {
	log := r.logger.With(slog.String("file", r.path), slog.String("trigger", why))
	cfg, diags, err := observers.Load(r.path)
	for _, d := range diags {
		log.Warn("config: " + d.String())
	}
	if err == nil {
		err = cfg.Resolve(os.LookupEnv)
	}
	if err != nil {
		log.Error("config: reload rejected; the running configuration stays", slog.String("error", err.Error()))
		return
	}
	if cfg.Hash == r.current.Hash {
		log.Debug("config: unchanged")
		return
	}
	ver, err := r.configs.Register(ctx, cfg)
	if err == nil {
		// Queues first, so jobs of a newly used action type find a worker.
		err = obsriver.AddQueues(r.client, r.queues, cfg)
	}
	if err == nil {
		err = r.listener.Reload(cfg, ver.ID)
	}
	if err != nil {
		log.Error("config: reload rejected; the running configuration stays", slog.String("error", err.Error()))
		return
	}
	if restartOnly(r.current, cfg) {
		log.Warn("config: worker, storage and SMTP settings take effect at the next restart; observers and listener settings took effect now")
	}
	r.current = cfg
	log.Info("config: reloaded", slog.Int64("config_version", ver.ID), slog.Int("observers", len(cfg.Observers)))
}

// restartOnly reports whether settings that only a restart applies differ.
func restartOnly(a, b *observers.Config) bool {
	return a.Workers != b.Workers || !reflect.DeepEqual(a.Concurrency, b.Concurrency) ||
		a.AllowPrivateTargets != b.AllowPrivateTargets || a.CircuitBreakerBackend != b.CircuitBreakerBackend ||
		a.Dedup != b.Dedup || a.Redis != b.Redis || a.Cache != b.Cache || !reflect.DeepEqual(a.SMTP, b.SMTP)
}
