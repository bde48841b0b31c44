package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/retention"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
)

type retentionOpts struct {
	DatabaseURL string
	Format      string
	// ConfigPath is the observers YAML whose retention: block and
	// listener.table apply; "" reads the configuration loaded last by run.
	ConfigPath string
	DryRun     bool
}

func (o *retentionOpts) Validate() error { return validateFormat(o.Format) }

func newRetentionCmd() *cobra.Command {
	opts := &retentionOpts{}
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Delete (or, with --dry-run, count) rows older than the retention: block allows",
		Long: `Apply the retention: block now, as the periodic job of ` + "`run`" + ` does, with the
same code: completed River jobs, dead letters (cancelled and discarded jobs),
observer_skipped_events and, when retention.change_log is set, the change
log. A change-log row goes only once every listener group reading the table
has passed it and no unfinished delivery (dead letters included) refers to
it. Rows go in short batches (about 10 ms, at most 10,000 rows each) with a
pause after each, so it is safe on a live system: the pipeline's latency
barely moves. --dry-run counts and deletes nothing.

The retention: block and listener.table come from --config, or else from the
configuration loaded last by ` + "`run`" + ` (its defaults when none is stored).
Exit code 0 when done, 1 when a deletion failed, 2 on bad usage, an invalid
--config or an unreachable database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runRetention(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	cmd.Flags().StringVar(&opts.ConfigPath, "config", "", "observers YAML whose retention: block applies (default: the configuration loaded last by run)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "count what would be deleted; delete nothing")
	return cmd
}

// retentionReport is the --format json output.
type retentionReport struct {
	retention.Report
	// Config says where the periods come from: the file, "version N" (the
	// configuration stored last) or "defaults".
	Config    string `json:"config"`
	ChangeLog string `json:"change_log_table"`
	Total     int64  `json:"total"`
}

func runRetention(ctx context.Context, opts *retentionOpts, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := openDB(ctx, opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	cfg, source, err := commandConfig(ctx, pool, opts.ConfigPath)
	if err != nil {
		return err
	}
	r, err := retention.New(retention.Params{DB: pool, Config: cfg.Retention, ChangeLog: cfg.Listener.Table})
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	var bars retentionProgress
	o := retention.Options{DryRun: opts.DryRun}
	if !opts.DryRun {
		o.Progress = bars.add(stderr)
	}
	rep, runErr := r.Apply(ctx, o)
	bars.finish()
	out := retentionReport{Report: rep, Config: source, ChangeLog: cfg.Listener.Table}
	for _, t := range rep.Tables {
		out.Total += t.Rows
	}
	if opts.Format == "json" {
		err = writeJSON(stdout, out)
	} else {
		writeRetentionText(stdout, out)
	}
	if runErr != nil {
		return withExitCode(exitFailure, runErr)
	}
	return err
}

// commandConfig loads --config, or the configuration loaded last by run, or
// the defaults; source names which.
func commandConfig(ctx context.Context, pool *pgxpool.Pool, path string) (*observers.Config, string, error) {
	if path != "" {
		cfg, diags, err := observers.LoadConfig(ctx, path, observers.LoadOptions{})
		if err != nil {
			err = errors.Wrap(err, "--config")
			if errs := diags.Errors(); len(errs) > 0 && errs[0].Hint != "" {
				err = errors.WithHint(err, errs[0].Hint) // the first problem's own hint
			}
			return nil, "", withExitCode(exitUsage, err)
		}
		return cfg, path, nil
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := obsriver.NewConfigStore(pool).Latest(qctx)
	if errors.Is(err, storage.ErrNotFound) {
		cfg := &observers.Config{Listener: observers.ListenerConfig{}.WithDefaults(), Retention: observers.RetentionConfig{}.WithDefaults()}
		return cfg, "defaults (no configuration stored yet; pass --config)", nil
	}
	if err != nil {
		return nil, "", withExitCode(exitFailure, errors.WithHint(errors.Wrap(err, "read the stored configuration"),
			"pass the file `run` uses with --config"))
	}
	return v.Config, fmt.Sprintf("version %d (loaded last by run)", v.ID), nil
}

// retentionProgress shows one progress report per table that deletes rows.
type retentionProgress struct {
	table string
	p     *progress
}

func (b *retentionProgress) add(w io.Writer) func(table string, n int64) {
	return func(table string, n int64) {
		if n == 0 && b.table != table {
			return
		}
		if b.table != table {
			b.finish()
			b.table, b.p = table, newProgress(w, -1, "deleting "+table)
		}
		b.p.Add(int(n))
	}
}

func (b *retentionProgress) finish() {
	if b.p != nil {
		b.p.Finish()
		b.p = nil
	}
}

func writeRetentionText(w io.Writer, r retentionReport) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
		fmt.Fprintln(w, "Dry run: nothing is deleted.")
	}
	fmt.Fprintf(w, "Configuration: %s\nChange log:    %s\n\n", r.Config, r.ChangeLog)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TABLE\tKEEP\tOLDER THAN\t%s\tNOTE\n", strings.ToUpper(verb))
	for _, t := range r.Tables {
		if t.Before == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tkept forever\n", t.Table, t.Period)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Table, t.Period, t.Before.UTC().Format("2006-01-02 15:04 UTC"), t.Rows, retentionNote(t))
	}
	_ = tw.Flush()
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		fmt.Fprint(w, strings.TrimRight(line, " \n")+strings.Repeat("\n", strings.Count(line, "\n")))
	}
	if r.DryRun {
		fmt.Fprintf(w, "\nTotal: %d rows would be deleted.\n", r.Total)
	} else {
		fmt.Fprintf(w, "\nTotal: %d rows deleted.\n", r.Total)
	}
	if r.DryRun && r.Total > 0 {
		fmt.Fprintln(w, "Run without --dry-run to delete them (the periodic job of `run` does too).")
	}
}

func retentionNote(t retention.TableReport) string {
	note := ""
	if t.Table == observers.RetentionChangeLog {
		if t.HeldBy == "" {
			return "no listener group reads this table yet: nothing goes"
		}
		note = fmt.Sprintf("up to the checkpoint of group %q (txid %s, pk %d)", t.HeldBy, t.Checkpoint.TxID, t.Checkpoint.PK)
		if t.Pinned > 0 {
			note += fmt.Sprintf("; %d kept for unfinished deliveries", t.Pinned)
		}
	}
	if !t.Complete {
		note += "; stopped early"
	}
	return note
}
