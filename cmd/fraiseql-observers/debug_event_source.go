package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// debugEnv is what debug-event reads from: the database, the stored
// configuration versions, the change log and, with --config, a file.
type debugEnv struct {
	pool     *pgxpool.Pool
	versions *obsriver.ConfigStore
	log      *changelog.ChangeLog
	table    string
	file     *observers.Config // --config; nil otherwise
	path     string
	latest   *obsriver.Version // the newest stored version reading table; nil when none
}

// configRef says where the observers a change was matched against come from.
type configRef struct {
	// Source is "version" (the version its deliveries name), "latest" (the
	// newest stored version), "file" (--config) or "none".
	Source     string `json:"source"`
	Version    int64  `json:"version,omitempty"`
	File       string `json:"file,omitempty"`
	ListenerID string `json:"listener_id"`
	Why        string `json:"why"`
}

// configChoice is the configuration a change is explained with; cfg is nil
// when there is none.
type configChoice struct {
	cfg *observers.Config
	ref configRef
}

// newDebugEnv loads --config and picks the change log: --table, else the
// file's listener.table, else the newest stored version's, else the default.
func newDebugEnv(ctx context.Context, pool *pgxpool.Pool, opts *debugEventOpts) (*debugEnv, error) {
	e := &debugEnv{pool: pool, versions: obsriver.NewConfigStore(pool), table: opts.Table, path: opts.ConfigFile}
	if opts.ConfigFile != "" {
		cfg, err := loadDebugConfig(ctx, pool, opts)
		if err != nil {
			return nil, err
		}
		e.file = cfg
		if e.table == "" {
			e.table = cfg.Listener.Table
		}
	}
	if e.table == "" {
		v, err := e.versions.LatestFor(ctx, "")
		if err != nil {
			return nil, withExitCode(exitFailure, errors.WithHint(err, "pass --config FILE to match against a file instead"))
		}
		e.table = defaultChangeLog
		if v != nil {
			e.table = v.Config.Listener.Table
		}
	}
	if e.file == nil {
		v, err := e.versions.LatestFor(ctx, e.table)
		if err != nil {
			return nil, withExitCode(exitFailure, errors.WithHint(err, "pass --config FILE to match against a file instead"))
		}
		e.latest = v
	}
	cl, err := changelog.New(e.table)
	if err != nil {
		return nil, withExitCode(exitUsage, err)
	}
	e.log = cl
	return e, nil
}

// loadDebugConfig loads --config as validate-config does (its
// observers_table rows read from the database); its *_env variables need
// not be set.
func loadDebugConfig(ctx context.Context, pool *pgxpool.Pool, opts *debugEventOpts) (*observers.Config, error) {
	cfg, diags, err := observers.LoadConfig(ctx, opts.ConfigFile, observers.LoadOptions{
		Getenv: opts.Getenv,
		Rows: func(ctx context.Context, table string) ([]observers.TableObserver, error) {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return observers.ReadTableObservers(qctx, pool, table)
		},
	})
	if err == nil && diags.HasErrors() {
		err = errors.Newf("%d errors", len(diags.Errors()))
	}
	if err != nil {
		first := ""
		if errs := diags.Errors(); len(errs) > 0 {
			first = "; first: " + errs[0].String()
		}
		return nil, withExitCode(exitUsage, errors.WithHintf(errors.Wrapf(err, "--config %s%s", opts.ConfigFile, first),
			"run fraiseql-observers validate-config %s to see every problem", opts.ConfigFile))
	}
	return cfg, nil
}

// choose picks the configuration to explain a change with: --config, else
// the version its deliveries name, else the newest stored one.
func (e *debugEnv) choose(ctx context.Context, dels []obsriver.EventDelivery) (configChoice, error) {
	if e.file != nil {
		return configChoice{cfg: e.file, ref: configRef{Source: "file", File: e.path, ListenerID: e.file.Listener.ID,
			Why: "--config: what this file would match; the deliveries below were made under the stored configuration"}}, nil
	}
	if len(dels) > 0 {
		id := dels[0].ConfigVersion
		v, err := e.versions.Get(ctx, id)
		if err != nil {
			return configChoice{}, withExitCode(exitFailure, err)
		}
		why := "the version its deliveries were matched under"
		for _, d := range dels {
			if d.ConfigVersion != id {
				why += fmt.Sprintf(" (some name version %d)", d.ConfigVersion)
				break
			}
		}
		return configChoice{cfg: v.Config, ref: configRef{Source: "version", Version: id, ListenerID: v.Config.Listener.ID, Why: why}}, nil
	}
	if v := e.latest; v != nil {
		return configChoice{cfg: v.Config, ref: configRef{Source: "latest", Version: v.ID, ListenerID: v.Config.Listener.ID,
			Why: "the newest stored version reading " + e.table + "; no delivery names the version the change was read under"}}, nil
	}
	return configChoice{ref: configRef{Source: "none", ListenerID: observers.ListenerIDDefault,
		Why: "no stored configuration reads " + e.table + " (the daemon has not run on it); pass --config FILE"}}, nil
}

// deliveries returns the deliveries of the changes seqs made under a
// configuration that reads this change log (jobs do not name their table).
func (e *debugEnv) deliveries(ctx context.Context, seqs []int64) ([]obsriver.EventDelivery, error) {
	dels, err := obsriver.EventDeliveries(ctx, e.pool, seqs)
	if err != nil {
		return nil, withExitCode(exitFailure, err)
	}
	ours := map[int64]bool{}
	return slices.DeleteFunc(dels, func(d obsriver.EventDelivery) bool {
		keep, seen := ours[d.ConfigVersion]
		if !seen {
			v, err := e.versions.Get(ctx, d.ConfigVersion)
			keep = err != nil || observers.SameTable(v.Config.Listener.Table, e.table) // unreadable version: kept
			ours[d.ConfigVersion] = keep
		}
		return !keep
	}), nil
}

// position is the listener's checkpoint and the committed horizon.
type position struct {
	found         bool
	txid, eventID int64
	horizon       int64
}

func (e *debugEnv) position(ctx context.Context, listenerID string) (position, error) {
	row, err := dbsqlc.New(e.pool).CheckpointPosition(ctx, listenerID)
	if err != nil {
		return position{}, withExitCode(exitFailure, errors.Wrap(err, "read the checkpoint"))
	}
	return position{found: row.Found, txid: row.Txid, eventID: row.EventID, horizon: row.Horizon}, nil
}

// readView says whether the listener has read a change.
type readView struct {
	// State is "read" (the checkpoint is past it), "not_read" or
	// "no_checkpoint" (the listener group has never run).
	State      string `json:"state"`
	ListenerID string `json:"listener_id"`
	// Checkpoint is the listener's position: the last change read.
	CheckpointPK   int64 `json:"checkpoint_pk"`
	CheckpointTxID int64 `json:"checkpoint_txid"`
	// HeldByHorizon: not read, and a transaction older than the change's
	// is still open, so the listener cannot read it yet.
	HeldByHorizon bool `json:"held_by_horizon"`
}

// read places ev against the checkpoint: the listener reads in (txid, pk)
// order, so a change at or before the checkpoint has been read.
func (p position) read(listenerID string, ev *observers.Event) readView {
	v := readView{ListenerID: listenerID, CheckpointPK: p.eventID, CheckpointTxID: p.txid}
	tx := int64(ev.TxID)
	switch {
	case !p.found:
		v.State = "no_checkpoint"
	case tx < p.txid || (tx == p.txid && ev.Seq <= p.eventID):
		v.State = "read"
	default:
		v.State = "not_read"
	}
	v.HeldByHorizon = v.State != "read" && tx >= p.horizon
	return v
}

// skipView is one record of observer_skipped_events.
type skipView struct {
	ListenerID string     `json:"listener_id"`
	Reason     string     `json:"reason"`
	At         *time.Time `json:"at"`
}

// skipped returns the skip records of the changes seqs, by pk.
func (e *debugEnv) skipped(ctx context.Context, seqs []int64) (map[int64][]skipView, error) {
	rows, err := dbsqlc.New(e.pool).SkippedEventsByChange(ctx, seqs)
	if err != nil {
		return nil, withExitCode(exitFailure, errors.Wrap(err, "read skipped changes"))
	}
	out := map[int64][]skipView{}
	for _, r := range rows {
		if r.ChangePk == nil {
			continue
		}
		out[*r.ChangePk] = append(out[*r.ChangePk], skipView{ListenerID: debugStr(r.ListenerID), Reason: debugStr(r.Reason), At: r.CreatedAt})
	}
	return out, nil
}

func debugStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
