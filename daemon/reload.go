package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fsnotify/fsnotify"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// reloadDebounce gathers the several events an editor's save makes.
const reloadDebounce = 200 * time.Millisecond

// configChannel is the NOTIFY channel of observers_table changes
// (sql/migrations/00009_config_notify.sql).
const configChannel = "fraiseql_observers_config"

// reloader puts a changed configuration in force without a restart: on
// SIGHUP (when the daemon handles it), when the file changes (when watched)
// and, with observers_table set, when the table changes (NOTIFY). Every
// reload goes through observers.LoadConfig like the first load; a
// configuration that fails validation, or names a secret variable that is
// unset, is rejected with every problem logged and the running one stays.
// It is a service: Start returns once the file is watched, Stop waits for
// its goroutines.
type reloader struct {
	d       *Daemon
	current *observers.Config
	queues  *obsriver.QueueSet // River queues this process works

	tableChanged chan struct{} // a NOTIFY on configChannel arrived
	listening    bool          // the LISTEN goroutine is started

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func newReloader(d *Daemon) *reloader {
	return &reloader{d: d, current: d.cfg, queues: d.queues, tableChanged: make(chan struct{}, 1)}
}

func (r *reloader) log() *slog.Logger { return r.d.logger }

// Start watches SIGHUP and the file, then checks the file once (it may
// have changed between the first load and the watch) and returns: no
// change made after Start returns is missed.
func (r *reloader) Start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(ctx)
	var hup chan os.Signal
	if r.d.o.HandleSIGHUP {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
	}
	var w *fsnotify.Watcher
	if r.d.o.WatchConfig {
		var err error
		if w, err = fsnotify.NewWatcher(); err == nil {
			// Watch the directory: editors replace the file rather than write it.
			if err = w.Add(filepath.Dir(r.d.o.ConfigPath)); err != nil {
				_ = w.Close()
				w = nil
			}
		}
		if err != nil {
			r.log().Warn("config: cannot watch the file; reload with SIGHUP", slog.String("file", r.d.o.ConfigPath), slog.String("error", err.Error()))
		}
	}
	r.listenTable(ctx)
	if w != nil {
		// Without a watcher only SIGHUP reloads, and a change is its.
		r.recheck(ctx)
	}
	r.wg.Go(func() {
		defer func() {
			if hup != nil {
				signal.Stop(hup)
			}
			if w != nil {
				_ = w.Close()
			}
		}()
		r.loop(ctx, hup, w)
	})
	return nil
}

// Stop ends the reloader and waits for it. Safe to call twice.
func (r *reloader) Stop() {
	r.stopOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
	})
}

func (r *reloader) loop(ctx context.Context, hup <-chan os.Signal, w *fsnotify.Watcher) {
	var changed <-chan fsnotify.Event
	if w != nil {
		changed = w.Events
	}
	target := filepath.Clean(r.d.o.ConfigPath)
	var debounce <-chan time.Time
	why := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(ctx, "SIGHUP")
		case ev := <-changed:
			if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce, why = time.After(reloadDebounce), "file changed"
			}
		case <-r.tableChanged:
			debounce, why = time.After(reloadDebounce), "table changed"
		case <-debounce:
			debounce = nil
			r.reload(ctx, why)
		}
	}
}

// recheck reloads when the file's bytes differ from those in force.
func (r *reloader) recheck(ctx context.Context) {
	data, err := observers.ReadConfigFile(r.d.o.ConfigPath, r.d.loadOptions().MaxFileBytes)
	if err == nil && r.current.SameFile(data) {
		return
	}
	r.reload(ctx, "watch started")
}

func (r *reloader) reload(ctx context.Context, why string) {
	log := r.log().With(slog.String("file", r.d.o.ConfigPath), slog.String("trigger", why))
	defer func() { // the last line of defence: no file stops the reloader
		if p := recover(); p != nil {
			log.Error("config: reload rejected; the running configuration stays", slog.String("error", fmt.Sprintf("panic: %v", p)))
		}
	}()
	cfg, diags, err := observers.LoadConfig(ctx, r.d.o.ConfigPath, r.d.loadOptions())
	for _, d := range diags {
		log.Warn("config: " + d.String())
	}
	if err != nil {
		log.Error("config: reload rejected; the running configuration stays", slog.String("error", err.Error()))
		return
	}
	if cfg.Hash == r.current.Hash {
		log.Debug("config: unchanged")
		return
	}
	ver, err := r.d.configs.Register(ctx, cfg)
	if err == nil {
		// Queues first, so jobs of a newly used action type find a worker.
		err = obsriver.AddQueues(r.d.client, r.queues, cfg)
	}
	if err == nil {
		err = r.d.listener.Reload(cfg, ver.ID)
	}
	if err != nil {
		log.Error("config: reload rejected; the running configuration stays", slog.String("error", err.Error()))
		return
	}
	if restartOnly(r.current, cfg) {
		log.Warn("config: worker, storage, SMTP, admin, search and audit settings take effect at the next restart; observers and listener settings took effect now")
	}
	r.d.retention.SetConfig(cfg.Retention)
	r.current = cfg
	r.listenTable(ctx)
	log.Info("config: reloaded", slog.Int64("config_version", ver.ID), slog.Int("observers", len(cfg.Observers)))
}

// restartOnly reports whether settings that only a restart applies differ.
func restartOnly(a, b *observers.Config) bool {
	return a.Workers != b.Workers || !reflect.DeepEqual(a.Concurrency, b.Concurrency) ||
		a.AllowPrivateTargets != b.AllowPrivateTargets || a.CircuitBreakerBackend != b.CircuitBreakerBackend ||
		a.RateLimitBackend != b.RateLimitBackend ||
		a.Dedup != b.Dedup || a.Redis != b.Redis || a.Cache != b.Cache || !reflect.DeepEqual(a.SMTP, b.SMTP) ||
		!reflect.DeepEqual(a.Admin, b.Admin) || !reflect.DeepEqual(a.Elasticsearch, b.Elasticsearch) ||
		a.Search != b.Search || a.Audit != b.Audit
}

// listenTable starts, once and only when the running configuration has an
// observers_table, the LISTEN connection that turns its NOTIFYs into reloads.
func (r *reloader) listenTable(ctx context.Context) {
	if r.listening || r.current.ObserversTable == "" {
		return
	}
	r.listening = true
	r.wg.Go(func() {
		for {
			err := r.listenOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			r.log().Warn("config: LISTEN connection lost; reconnecting", slog.String("error", err.Error()))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	})
}

// listenOnce LISTENs on a dedicated connection until it fails or ctx ends.
func (r *reloader) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return errors.Wrap(err, "connect")
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+configChannel); err != nil {
		return errors.Wrap(err, "listen")
	}
	r.signalTable() // a change may have come while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return errors.Wrap(err, "wait for notification")
		}
		r.signalTable()
	}
}

func (r *reloader) signalTable() {
	select {
	case r.tableChanged <- struct{}{}:
	default:
	}
}
