package main

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// debugEventTimeout bounds the whole debug-event read once connected.
const debugEventTimeout = time.Minute

// Bounds of --history.
const (
	debugHistoryDefault = 10
	debugHistoryMax     = 1000
)

// defaultChangeLog is the change log read when neither --table nor a
// configuration names one.
const defaultChangeLog = "core.tb_entity_change_log"

type debugEventOpts struct {
	DatabaseURL string
	Format      string
	// EventID is the change's uuid (id) or pk (pk_entity_change_log); it
	// selects the one-event report.
	EventID string
	// EntityType, Kind and History select the history: the last History
	// changes of the entity type ("" any) and kind ("" any).
	EntityType string
	Kind       string
	History    int
	// ConfigFile, when set, is matched against instead of the stored
	// configuration versions.
	ConfigFile string
	// Table is the change log; "" takes it from the configuration.
	Table string
	// Getenv looks up the *_env variables of ConfigFile; nil means the
	// process environment. They are not required: nothing is sent.
	Getenv func(string) (string, bool)

	kind observers.Kind // Kind parsed by Validate
}

// historyMode reports whether the options ask for the history.
func (o *debugEventOpts) historyMode() bool {
	return o.History != 0 || o.EntityType != "" || o.Kind != ""
}

func (o *debugEventOpts) Validate() error {
	if o.DatabaseURL == "" {
		return errors.WithHint(errors.New("--database-url is empty"), "pass --database-url or set DATABASE_URL")
	}
	if err := validateFormat(o.Format); err != nil {
		return err
	}
	o.EventID = strings.TrimSpace(o.EventID)
	switch {
	case o.EventID != "" && o.historyMode():
		return errors.WithHint(errors.New("--event-id cannot be combined with --entity-type, --kind or --history"),
			"debug one change with --event-id, or list the last ones with --entity-type Order --kind created --history 10")
	case o.EventID == "" && !o.historyMode():
		return errors.WithHint(errors.New("nothing to debug"),
			"pass --event-id (the change's uuid or pk), or --entity-type Order --kind created --history 10")
	}
	if o.historyMode() {
		if o.History == 0 {
			o.History = debugHistoryDefault
		}
		if o.History < 0 || o.History > debugHistoryMax {
			return errors.WithHintf(errors.Newf("--history %d is out of range", o.History), "list 1 to %d changes", debugHistoryMax)
		}
	}
	if o.Kind != "" {
		k, ok := observers.ParseKind(o.Kind)
		if !ok {
			return errors.WithHint(errors.Newf("--kind %q is not a kind of change", o.Kind),
				"use created, updated, deleted or custom (or INSERT, UPDATE, DELETE, CUSTOM)")
		}
		o.kind = k
	}
	if o.Table != "" {
		if _, err := observers.ParseTableName(o.Table); err != nil {
			return errors.Wrap(err, "--table")
		}
	}
	return nil
}

func newDebugEventCmd() *cobra.Command {
	opts := &debugEventOpts{}
	cmd := &cobra.Command{
		Use:   "debug-event",
		Short: "Explain what happened to one change, or list the last changes of an entity with their outcome",
		Long: `Explain one change of the change log (--event-id, its uuid or its pk): the
change itself; every observer and whether it matched, and if not why (entity,
kind, condition false, condition error with its message); whether the listener
has read it or skipped it; the deliveries it produced with their state,
attempts, errors and times; what deduplication and the result cache did with
it, as far as the database tells.

The observers are those of the configuration version the change's deliveries
were matched under, else the newest stored version (each run stores its
configuration); --config FILE tries a file instead.

With --entity-type, --kind or --history it lists the last changes (10 by
default), one line each with their outcome.

Reads only; it changes nothing. Exit code 0 when the change (or at least one
change) is found, 1 when not, 2 on bad flags or an unreachable database.`,
		Example: `  fraiseql-observers debug-event --event-id 1042
  fraiseql-observers debug-event --event-id 5d0b6c1e-8f2a-4c1e-9a57-0c6f2d1e9b3a --format json
  fraiseql-observers debug-event --event-id 1042 --config observers.new.yaml
  fraiseql-observers debug-event --entity-type Order --kind created --history 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runDebugEvent(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	f := cmd.Flags()
	f.StringVar(&opts.EventID, "event-id", "", "the change to explain: its uuid (id) or its pk (pk_entity_change_log)")
	f.StringVar(&opts.EntityType, "entity-type", "", "list the last changes of this entity type (object_type, case-sensitive)")
	f.StringVar(&opts.Kind, "kind", "", "list only changes of this kind: created|updated|deleted|custom or INSERT|UPDATE|DELETE|CUSTOM")
	f.IntVar(&opts.History, "history", 0, "how many of the last changes to list (default 10 with --entity-type or --kind)")
	f.StringVar(&opts.ConfigFile, "config", "", "match against this observers file instead of the stored configuration")
	f.StringVar(&opts.Table, "table", "", "change log as schema.table (default: the configuration's listener.table, else "+defaultChangeLog+")")
	return cmd
}

func runDebugEvent(ctx context.Context, opts *debugEventOpts, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, debugEventTimeout)
	defer cancel()
	pool, err := openDB(ctx, opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	e, err := newDebugEnv(ctx, pool, opts)
	if err != nil {
		return err
	}
	if opts.historyMode() {
		return runDebugHistory(ctx, e, opts, w)
	}
	r, err := e.report(ctx, opts.EventID)
	if err != nil {
		return err
	}
	if opts.Format == "json" {
		return writeJSON(w, r)
	}
	return writeDebugText(w, r)
}
