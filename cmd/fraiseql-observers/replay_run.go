package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/replay"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// replaySetupTimeout bounds the reads before the batches (configuration,
// checkpoint, the count of the selection).
const replaySetupTimeout = 5 * time.Minute

// replayChanges runs a replay (new or resumed) or a dry run.
func replayChanges(ctx context.Context, pool *pgxpool.Pool, opts *replayOpts, w, errw io.Writer) error {
	configs := obsriver.NewConfigStore(pool)
	sctx, cancel := context.WithTimeout(ctx, replaySetupTimeout)
	defer cancel()
	var (
		rep     *replay.Replay
		ver     *obsriver.Version
		resumed bool
		err     error
	)
	if opts.mode() == "resume" {
		if rep, ver, err = resumeByID(sctx, pool, configs, opts.Resume); err != nil {
			return err
		}
		resumed = true
	} else {
		sel, err := opts.selection()
		if err != nil {
			return err
		}
		cfg, latest, req, err := replayConfig(sctx, pool, configs, opts)
		if err != nil {
			return err
		}
		if opts.DryRun {
			return dryRunReplay(sctx, pool, opts, cfg, latest, req, sel, w, errw)
		}
		if rep, ver, resumed, err = startReplay(sctx, pool, configs, opts, cfg, latest, req, sel); err != nil {
			return err
		}
	}
	return runReplayBatches(ctx, pool, opts, rep, ver, resumed, w, errw)
}

// resumeByID returns unfinished replay id and its configuration version.
func resumeByID(ctx context.Context, pool *pgxpool.Pool, configs *obsriver.ConfigStore, id int64) (*replay.Replay, *obsriver.Version, error) {
	rep, err := replay.Get(ctx, pool, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, withExitCode(exitUsage, err)
	}
	if err != nil {
		return nil, nil, withExitCode(exitFailure, err)
	}
	if rep.State != replay.StateRunning {
		return nil, nil, withExitCode(exitFailure, errors.WithHint(errors.Newf("replay %d is %s: there is nothing to resume", id, rep.State),
			"start a new replay with --from"))
	}
	ver, err := configs.Get(ctx, rep.ConfigVersion)
	if err != nil {
		return nil, nil, withExitCode(exitFailure, err)
	}
	return rep, ver, nil
}

// replayConfig loads the observers the changes run through (the latest
// stored version, whose id it returns, or --config) and builds the
// request: the listener group and the selection as typed.
func replayConfig(ctx context.Context, pool *pgxpool.Pool, configs *obsriver.ConfigStore, opts *replayOpts,
) (cfg *observers.Config, latest int64, req replay.Request, err error) {
	req = replay.Request{From: opts.From, To: opts.To, Observers: opts.Observers, EntityTypes: opts.EntityTypes, Config: "latest"}
	if opts.ConfigPath != "" {
		c, _, err := observers.LoadConfig(ctx, opts.ConfigPath, observers.LoadOptions{
			Rows: func(ctx context.Context, table string) ([]observers.TableObserver, error) {
				return observers.ReadTableObservers(ctx, pool, table)
			},
		})
		if err != nil {
			return nil, 0, req, withExitCode(exitFailure, errors.WithHint(err, "`fraiseql-observers validate-config` shows every problem of the file"))
		}
		cfg, req.Config = c, "file:"+c.Hash
	} else {
		v, err := configs.Latest(ctx)
		if err != nil {
			return nil, 0, req, withExitCode(exitFailure, err)
		}
		cfg, latest = v.Config, v.ID
	}
	own := cfg.Listener.WithDefaults().ID
	req.ListenerID = cmp.Or(opts.Listener, own)
	if req.ListenerID != own {
		return nil, 0, req, withExitCode(exitUsage, errors.WithHint(
			errors.Newf("--listener %s, but the configuration's listener.id is %s", opts.Listener, own),
			"pass --config with the observers file of listener group "+opts.Listener))
	}
	if err := replay.CheckObservers(cfg, opts.Observers); err != nil {
		return nil, 0, req, withExitCode(exitUsage, err)
	}
	return cfg, latest, req, nil
}

// startReplay resumes the unfinished replay of req, or creates one.
func startReplay(ctx context.Context, pool *pgxpool.Pool, configs *obsriver.ConfigStore, opts *replayOpts,
	cfg *observers.Config, latest int64, req replay.Request, sel replay.Selection,
) (rep *replay.Replay, ver *obsriver.Version, resumed bool, err error) {
	if rep, err = replay.FindUnfinished(ctx, pool, req); err != nil {
		return nil, nil, false, withExitCode(exitFailure, err)
	}
	if rep != nil {
		ver, err = configs.Get(ctx, rep.ConfigVersion)
		return rep, ver, true, withExitCode(exitFailure, err)
	}
	if opts.ConfigPath != "" {
		ver, err = configs.Store(ctx, cfg)
	} else {
		ver, err = configs.Get(ctx, latest)
	}
	if err != nil {
		return nil, nil, false, withExitCode(exitFailure, err)
	}
	runner, err := replay.New(replay.Params{Pool: pool, Config: ver.Config, ConfigVersion: ver.ID, BatchSize: opts.BatchSize})
	if err != nil {
		return nil, nil, false, withExitCode(exitFailure, err)
	}
	rep, created, err := runner.Create(ctx, req, sel)
	if err != nil {
		return nil, nil, false, withExitCode(exitFailure, err)
	}
	if !created {
		ver, err = configs.Get(ctx, rep.ConfigVersion)
	}
	return rep, ver, !created, withExitCode(exitFailure, err)
}

// runReplayBatches runs rep's batches with a progress report and writes
// the summary.
func runReplayBatches(ctx context.Context, pool *pgxpool.Pool, opts *replayOpts, rep *replay.Replay, ver *obsriver.Version,
	resumed bool, w, errw io.Writer,
) error {
	enq, err := obsriver.NewInserter(pool, ver.Config.Concurrency.DeliveriesPerJob, obsriver.ReplayPriority)
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	text := opts.Format == "text"
	if text {
		if err := writeReplayHeader(w, rep, resumed); err != nil {
			return err
		}
	}
	prog := newProgress(errw, max(rep.Total-rep.Counts.EventsRead, 0), "replaying")
	batches := 0
	beforeCommit := opts.beforeCommit
	if beforeCommit == nil {
		beforeCommit = faultBeforeCommit()
	}
	runner, err := replay.New(replay.Params{
		Pool: pool, Config: ver.Config, ConfigVersion: ver.ID, Enqueuer: enq, BatchSize: opts.BatchSize,
		BeforeCommit: beforeCommit,
		Progress: func(rows int) {
			prog.Add(rows)
			batches++
			if opts.batchDone != nil {
				opts.batchDone(batches)
			}
		},
	})
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	runErr := runner.Run(ctx, rep)
	prog.Finish()
	// The summary is read with a context of its own: an interrupted
	// replay still says where it stopped.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	live, lerr := replay.LiveInstances(sctx, pool)
	if lerr != nil {
		live = -1
	}
	if text {
		err = writeReplaySummary(w, rep, live)
	} else {
		err = writeJSON(w, replayResult{Replay: rep, Resumed: resumed, LiveInstances: live})
	}
	if err != nil {
		return err
	}
	if runErr != nil {
		return withExitCode(exitFailure, errors.WithHint(runErr,
			fmt.Sprintf("run the same command again, or `fraiseql-observers replay --resume %d`, to continue where it stopped", rep.ID)))
	}
	return nil
}

// replayResult is the JSON output of a replay.
type replayResult struct {
	Replay  *replay.Replay `json:"replay"`
	Resumed bool           `json:"resumed"`
	// LiveInstances are the `run` processes with a fresh heartbeat, whose
	// workers deliver the jobs; -1 when unknown.
	LiveInstances int64 `json:"live_instances"`
}

// dryRunResult is the JSON output of --dry-run.
type dryRunResult struct {
	DryRun     bool   `json:"dry_run"`
	ListenerID string `json:"listener_id"`
	// ConfigVersion is the stored version the changes ran through; 0 for
	// a --config file not stored.
	ConfigVersion int64            `json:"config_version"`
	Selection     replay.Selection `json:"selection"`
	*replay.DryRunReport
	// Unfinished is the id of an unfinished replay of the same request,
	// which running without --dry-run resumes; 0 when none.
	Unfinished int64 `json:"unfinished_replay"`
}

// dryRunReplay counts what a replay would do and writes it.
func dryRunReplay(ctx context.Context, pool *pgxpool.Pool, opts *replayOpts, cfg *observers.Config, version int64,
	req replay.Request, sel replay.Selection, w, errw io.Writer,
) error {
	res := dryRunResult{DryRun: true, ListenerID: req.ListenerID, ConfigVersion: version, Selection: sel}
	prog := newProgress(errw, -1, "counting")
	runner, err := replay.New(replay.Params{Pool: pool, Config: cfg, ConfigVersion: res.ConfigVersion, BatchSize: opts.BatchSize,
		Progress: prog.Add})
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	res.DryRunReport, err = runner.DryRun(ctx, req.ListenerID, sel)
	prog.Finish()
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	if u, err := replay.FindUnfinished(ctx, pool, req); err == nil && u != nil {
		res.Unfinished = u.ID
	}
	if opts.Format == "json" {
		return writeJSON(w, res)
	}
	return writeDryRun(w, &res)
}
