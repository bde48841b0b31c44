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

	"github.com/cockroachdb/errors"
	"github.com/fsnotify/fsnotify"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// reloadDebounce gathers the several events an editor's save makes.
const reloadDebounce = 200 * time.Millisecond

// configChannel is the NOTIFY channel of observers_table changes
// (sql/migrations/00009_config_notify.sql).
const configChannel = "fraiseql_observers_config"

// reloader puts a changed configuration file in force without a restart: on
// SIGHUP, and when the file changes if watch is set. A file that fails
// validation, or names a secret variable that is unset, is rejected with
// every problem logged; the running configuration stays. With
// observers_table set it also reloads when the table changes (NOTIFY), and
// every reload reads both the file and the table.
type reloader struct {
	path     string
	watch    bool
	logger   *slog.Logger
	pool     *pgxpool.Pool
	configs  *obsriver.ConfigStore
	listener *observers.Listener
	current  *observers.Config
	client   *river.Client[pgx.Tx]
	queues   map[string]bool // River queues this process works

	tableChanged chan struct{} // a NOTIFY on configChannel arrived
	listening    bool          // the LISTEN connection is started
}

// run blocks until ctx ends; it closes armed once SIGHUP and the file are
// watched, so no change made after armed is missed.
func (r *reloader) run(ctx context.Context, armed chan<- struct{}) {
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
	r.tableChanged = make(chan struct{}, 1)
	r.listenTable(ctx)
	if changed != nil {
		// The file may have changed between the first load and the watch.
		// Checked before armed: a change after armed is the watcher's, and
		// without a watcher only SIGHUP reloads.
		r.reload(ctx, "watch started")
	}
	close(armed)
	target := filepath.Clean(r.path)
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

func (r *reloader) reload(ctx context.Context, why string) {
	log := r.logger.With(slog.String("file", r.path), slog.String("trigger", why))
	cfg, diags, err := observers.Load(r.path)
	for _, d := range diags {
		log.Warn("config: " + d.String())
	}
	if err == nil && cfg.ObserversTable != "" {
		cfg, diags, err = withTableObservers(ctx, r.pool, cfg)
		for _, d := range diags {
			log.Warn("config: " + d.String())
		}
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
	r.listenTable(ctx)
	log.Info("config: reloaded", slog.Int64("config_version", ver.ID), slog.Int("observers", len(cfg.Observers)))
}

// restartOnly reports whether settings that only a restart applies differ.
func restartOnly(a, b *observers.Config) bool {
	return a.Workers != b.Workers || !reflect.DeepEqual(a.Concurrency, b.Concurrency) ||
		a.AllowPrivateTargets != b.AllowPrivateTargets || a.CircuitBreakerBackend != b.CircuitBreakerBackend ||
		a.Dedup != b.Dedup || a.Redis != b.Redis || a.Cache != b.Cache || !reflect.DeepEqual(a.SMTP, b.SMTP)
}

// withTableObservers reads cfg's observers_table (attaching its NOTIFY
// trigger) and parses the file again with the table's rows. The diagnostics
// are the rows' only: the file's were reported when it was loaded.
func withTableObservers(ctx context.Context, pool *pgxpool.Pool, cfg *observers.Config) (*observers.Config, observers.Diagnostics, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := pool.Exec(qctx, `SELECT observers.attach_config_notify($1::text::regclass)`, cfg.ObserversTable); err != nil {
		return nil, nil, errors.WithHint(errors.Wrapf(err, "watch observers_table %s", cfg.ObserversTable),
			"the table must exist, and `fraiseql-observers migrate` must have run against this database")
	}
	rows, err := observers.ReadTableObservers(qctx, pool, cfg.ObserversTable)
	if err != nil {
		return nil, nil, err
	}
	merged, diags, err := observers.ParseWithTable(cfg.Filename, cfg.Source, rows, os.LookupEnv)
	var own observers.Diagnostics
	for _, d := range diags {
		if d.File != cfg.Filename {
			own = append(own, d)
		}
	}
	return merged, own, err
}

// listenTable starts, once and only when the running configuration has an
// observers_table, the LISTEN connection that turns its NOTIFYs into reloads.
func (r *reloader) listenTable(ctx context.Context) {
	if r.listening || r.pool == nil || r.current.ObserversTable == "" {
		return
	}
	r.listening = true
	go func() {
		for {
			err := r.listenOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			r.logger.Warn("config: LISTEN connection lost; reconnecting", slog.String("error", err.Error()))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// listenOnce LISTENs on a dedicated connection until it fails or ctx ends.
func (r *reloader) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
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
