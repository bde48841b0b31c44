package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/replay"
)

type replayOpts struct {
	DatabaseURL string
	Format      string
	From, To    string
	Observers   []string
	EntityTypes []string
	// Listener is the listener group whose checkpoint bounds the replay;
	// default the configuration's listener.id.
	Listener   string
	ConfigPath string
	DryRun     bool
	Resume     int64
	Cancel     int64
	List       bool
	Limit      int
	BatchSize  int

	// now is the clock ages (--from 24h) are taken from; default time.Now.
	now func() time.Time
	// batchDone, when set, is called after each committed batch (tests
	// interrupt a replay with it).
	batchDone func(batch int)
	// beforeCommit, when set, runs in each batch's transaction before it
	// commits (tests); otherwise the faultinject build's hook does.
	beforeCommit func(ctx context.Context, batch int) error
}

// mode is what the invocation asks for.
func (o *replayOpts) mode() string {
	switch {
	case o.List:
		return "list"
	case o.Cancel != 0:
		return "cancel"
	case o.Resume != 0:
		return "resume"
	case o.DryRun:
		return "dry-run"
	}
	return "replay"
}

func (o *replayOpts) Validate() error {
	if err := validateFormat(o.Format); err != nil {
		return err
	}
	modes := 0
	for _, on := range []bool{o.List, o.Cancel != 0, o.Resume != 0} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return errors.WithHint(errors.New("--list, --resume and --cancel exclude each other"), "pass one of them")
	}
	if o.Resume < 0 || o.Cancel < 0 {
		return errors.WithHint(errors.New("a replay id is positive"), "`fraiseql-observers replay --list` shows the ids")
	}
	selecting := o.From != "" || o.To != "" || len(o.Observers) > 0 || len(o.EntityTypes) > 0 || o.ConfigPath != ""
	switch {
	case modes == 1 && (selecting || o.DryRun):
		return errors.WithHint(errors.New("--list, --resume and --cancel take no selection"),
			"a resumed replay keeps the selection it started with; drop --from, --to, --observer, --entity-type, --config and --dry-run")
	case modes == 0 && o.From == "":
		return errors.WithHint(errors.New("--from is required"),
			"pass where the replay starts: --from 24h, --from 2024-05-01, --from 2024-05-01T12:00:00Z or --from <change-log pk>")
	case o.BatchSize < 0 || o.Limit <= 0:
		return errors.WithHint(errors.New("--batch-size and --limit must be positive"), "omit them for the defaults")
	}
	return nil
}

func newReplayCmd() *cobra.Command {
	opts := &replayOpts{}
	cmd := &cobra.Command{
		Use:   "replay --from <time|pk> [--to <time|pk>] [--observer NAME] [--entity-type E] [--dry-run]",
		Short: "Run past changes through the current observers again (same webhook-ids)",
		Long: `Run past changes of the change log through the observers again: the recovery
tool for a receiver that lost or mishandled deliveries. Each delivery keeps its
webhook-id (the same event, observer and action give the same id), so an
idempotent receiver recognises a repeat. Deduplication (dedup:) is bypassed:
you asked for these deliveries again.

Selection:
  --from and --to take a time or a change-log pk (pk_entity_change_log):
    an RFC3339 time (2024-05-01T12:00:00Z), a date (2024-05-01, midnight UTC),
    an age (90m, 24h, 7d, 2w: that long before now), or an integer pk.
  --from is inclusive, --to is exclusive: --from 2024-05-01 --to 2024-05-02 is
  that one day, --from 100 --to 200 is pks 100 to 199. Times compare with the
  change's created_at. --from and --to may mix a time and a pk.
  --observer and --entity-type (repeatable) narrow it to those observers' actions
  and those object_types.

Only changes the listener has already passed are replayed (at or before its
checkpoint when the replay starts), so a replay never races the live listener;
the output says how many selected changes were left out because the listener
has not reached them yet.

The observers are the configuration the running daemon loaded last (its
stored version), or --config FILE. Jobs are enqueued in batches, each batch
in one transaction with the replay's position (observer_replays), behind the
live pipeline's jobs (River priority 2). The running daemon's workers deliver
them; with no daemon running they wait in the queue.

An interrupted replay (Ctrl-C, kill, lost connection) resumes where it
stopped, without enqueueing anything twice: run the same command again, or
replay --resume ID. replay --list shows the replays; replay --cancel ID
abandons an unfinished one. --dry-run counts what would be replayed and
changes nothing.

Exit codes: 0 done, 1 interrupted or failed (resumable), 2 bad usage or the
database cannot be reached.`,
		Example: `  fraiseql-observers replay --from 24h --dry-run
  fraiseql-observers replay --from 2024-05-01T00:00:00Z --to 2024-05-01T06:00:00Z --observer order_created
  fraiseql-observers replay --from 120000 --to 125000 --entity-type Order
  fraiseql-observers replay --list
  fraiseql-observers replay --resume 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runReplay(ctx, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	f := cmd.Flags()
	f.StringVar(&opts.From, "from", "", "first change: a time (RFC3339, a date, an age like 24h or 7d) or a pk; inclusive")
	f.StringVar(&opts.To, "to", "", "end: a time or a pk, exclusive (default: the listener's checkpoint)")
	f.StringArrayVar(&opts.Observers, "observer", nil, "replay only this observer's actions (repeatable)")
	f.StringArrayVar(&opts.EntityTypes, "entity-type", nil, "replay only changes of this object_type (repeatable)")
	f.StringVar(&opts.Listener, "listener", "", "listener group whose checkpoint bounds the replay (default: the configuration's listener.id)")
	f.StringVarP(&opts.ConfigPath, "config", "c", "", "run the changes through this observers file instead of the running daemon's configuration")
	f.BoolVar(&opts.DryRun, "dry-run", false, "count what would be replayed; change nothing")
	f.Int64Var(&opts.Resume, "resume", 0, "resume the unfinished replay with this id")
	f.Int64Var(&opts.Cancel, "cancel", 0, "cancel the unfinished replay with this id")
	f.BoolVar(&opts.List, "list", false, "list the replays, newest first")
	f.IntVar(&opts.Limit, "limit", 20, "replays --list shows")
	f.IntVar(&opts.BatchSize, "batch-size", 0, "changes per batch (default: the configuration's listener.batch_size)")
	return cmd
}

// pkPattern is a change-log pk as --from and --to take it.
var pkPattern = regexp.MustCompile(`^[0-9]+$`)

// parseBound reads --from or --to: a pk, an RFC3339 time, a date (UTC) or
// an age before now.
func parseBound(flag, s string, now time.Time) (pk *int64, at *time.Time, err error) {
	if n, ok := parsePK(s); ok {
		return &n, nil, nil
	}
	if t, ok := parseTime(s, now); ok {
		return nil, &t, nil
	}
	return nil, nil, withExitCode(exitUsage, errors.WithHint(errors.Newf("--%s %q is neither a time nor a change-log pk", flag, s),
		"use an RFC3339 time (2024-05-01T12:00:00Z), a date (2024-05-01), an age (90m, 24h, 7d, 2w) or a pk (12345)"))
}

// parsePK reads a change-log pk.
func parsePK(s string) (int64, bool) {
	if !pkPattern.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseTime reads a time flag (replay's --from and --to, search's --since
// and --until): an RFC3339 time, a date (UTC) or an age before now.
func parseTime(s string, now time.Time) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	if d, err := observers.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), true
	}
	return time.Time{}, false
}

// selection resolves the options' --from, --to and filters.
func (o *replayOpts) selection() (replay.Selection, error) {
	now := time.Now()
	if o.now != nil {
		now = o.now()
	}
	sel := replay.Selection{EntityTypes: o.EntityTypes, Observers: o.Observers}
	var err error
	if sel.FromPK, sel.From, err = parseBound("from", o.From, now); err != nil {
		return sel, err
	}
	if o.To != "" {
		if sel.ToPK, sel.To, err = parseBound("to", o.To, now); err != nil {
			return sel, err
		}
	}
	if (sel.FromPK != nil && sel.ToPK != nil && *sel.ToPK <= *sel.FromPK) ||
		(sel.From != nil && sel.To != nil && !sel.To.After(*sel.From)) {
		return sel, withExitCode(exitUsage, errors.WithHint(errors.Newf("--to %s is not after --from %s: nothing is selected", o.To, o.From),
			"--from is inclusive and --to exclusive; pass a --to after --from"))
	}
	return sel, nil
}

// runReplay runs the invocation's mode.
func runReplay(ctx context.Context, opts *replayOpts, w, errw io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	pool, err := openDB(ctx, opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch opts.mode() {
	case "list":
		return listReplays(ctx, pool, opts, w)
	case "cancel":
		return cancelReplay(ctx, pool, opts, w)
	}
	return replayChanges(ctx, pool, opts, w, errw)
}
