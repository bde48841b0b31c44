package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "See, retry and remove dead deliveries (the dead-letter queue)",
		Long: `The dead-letter queue holds every delivery (one action of one observer for
one change) that will not be tried again: its River job was cancelled (a
permanent failure, such as an HTTP 400, or a configuration that no longer has
the action) or discarded (the observer's retry policy's attempts exhausted).

IDs. A delivery that failed after its first attempt continues as its own
action job; its id is that job's id, e.g. 123. A first attempt runs inside a
batch job of up to concurrency.deliveries_per_job deliveries; when a whole
batch job dies (rare: its outcomes could not be recorded), each of its
deliveries is dead, and its id is <batch job id>.<n>, e.g. 45.2, n counting
from 0 over the batch's deliveries in order.

Retrying puts back exactly that delivery (not the rest of its event, not the
other actions) with the full attempts of its observer's retry policy, under
the configuration version it was matched under, and it is sent with the same
webhook-id (an email with the same Message-ID), so an idempotent receiver
sees a retry, not a new message. Removing a delivery of a batch job marks it
removed in the batch job's metadata; the batch's other deliveries stay.

Exit codes: 0 done; 1 something was skipped, failed or not found; 2 bad
flags or arguments, or the database cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQRetryCmd(), newDLQRetryAllCmd(),
		newDLQRemoveCmd(), newDLQStatsCmd())
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withExitCode(exitUsage, errors.WithHint(err, "`"+c.CommandPath()+" --help` lists the flags"))
	})
	for _, c := range cmd.Commands() {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	}
	return cmd
}

// usageArgs gives the errors of an argument check a hint and exit code 2.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return withExitCode(exitUsage, errors.WithHint(err, "usage: "+c.UseLine()))
		}
		return nil
	}
}

// dlqOpts are the flags of every dlq command.
type dlqOpts struct {
	DatabaseURL string
	Format      string
}

func (o *dlqOpts) register(cmd *cobra.Command) {
	databaseURLFlag(cmd, &o.DatabaseURL)
	formatFlag(cmd, &o.Format)
}

func (o *dlqOpts) Validate() error { return validateFormat(o.Format) }

// dlqFilterFlags select dead deliveries.
type dlqFilterFlags struct {
	Observer   string
	ActionType string
	EntityType string
	Since      string
}

func (f *dlqFilterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Observer, "observer", "", "only the deliveries of this observer")
	cmd.Flags().StringVar(&f.ActionType, "action-type", "", "only the deliveries of this action type ("+strings.Join(observers.ActionTypeNames(), ", ")+")")
	cmd.Flags().StringVar(&f.EntityType, "entity-type", "", "only the deliveries of changes to this entity (object_type), e.g. Order")
	cmd.Flags().StringVar(&f.Since, "since", "", "only the deliveries that died within this long, e.g. 90m, 24h, 7d")
}

// filter checks the flags and returns the filter they select.
func (f *dlqFilterFlags) filter() (obsriver.DeadFilter, error) {
	df := obsriver.DeadFilter{Observer: f.Observer, ActionType: f.ActionType, EntityType: f.EntityType}
	if t := f.ActionType; t != "" && !slices.Contains(observers.ActionTypeNames(), t) {
		return df, withExitCode(exitUsage, errors.WithHint(errors.Newf("--action-type %q is not an action type", t),
			"use one of "+strings.Join(observers.ActionTypeNames(), ", ")))
	}
	if f.Since != "" {
		d, err := parseAge("since", f.Since)
		if err != nil {
			return df, err
		}
		df.Since = d
	}
	return df, nil
}

// withDLQ connects to the database and runs fn with its dead-letter queue.
// An error of fn that carries no exit code exits 1.
func withDLQ(ctx context.Context, databaseURL string, fn func(ctx context.Context, q *obsriver.DLQ) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	pool, err := openDB(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := obsriver.NewDLQ(pool)
	if err == nil {
		err = fn(ctx, q)
	}
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		if len(errors.GetAllHints(err)) == 0 {
			err = errors.WithHint(err, "check that the database is reachable and migrated (`fraiseql-observers migrate`)")
		}
		err = withExitCode(exitFailure, err)
	}
	return err
}

// parseDeliveryIDs reads the ids given as arguments.
func parseDeliveryIDs(args []string) ([]obsriver.DeliveryID, error) {
	ids := make([]obsriver.DeliveryID, 0, len(args))
	for _, a := range args {
		id, err := obsriver.ParseDeliveryID(a)
		if err != nil {
			return nil, withExitCode(exitUsage, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// lastErrorMaxChars cuts the last error in `dlq list`'s text.
const lastErrorMaxChars = 100

// writeDeadTable writes dead deliveries as a table.
func writeDeadTable(w io.Writer, ds []obsriver.DeadDelivery) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tOBSERVER\tACTION\tENTITY\tATTEMPTS\tDIED\tLAST ERROR")
	for _, d := range ds {
		entity := strings.TrimSpace(d.EntityType + " " + d.EntityID)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s[%d]\t%s\t%d/%d\t%s\t%s\n", d.ID, d.State, orDash(d.Observer), orDash(d.ActionType),
			d.Action, orDash(entity), d.Attempt, d.MaxAttempts, fmtTime(d.DiedAt), orDash(observers.Shorten(d.LastError, lastErrorMaxChars)))
	}
	return errors.Wrap(tw.Flush(), "write output")
}
