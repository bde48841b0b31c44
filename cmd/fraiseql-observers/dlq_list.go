package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// dlqListLimitMax bounds --limit.
const dlqListLimitMax = 10_000

type dlqListOpts struct {
	dlqOpts
	dlqFilterFlags
	Limit  int
	Offset int
}

func (o *dlqListOpts) Validate() error {
	if o.Limit < 1 || o.Limit > dlqListLimitMax {
		return errors.WithHint(errors.Newf("--limit %d is out of range", o.Limit), fmt.Sprintf("use 1 to %d; page with --offset", dlqListLimitMax))
	}
	if o.Offset < 0 {
		return errors.WithHint(errors.Newf("--offset %d is negative", o.Offset), "use 0 for the newest")
	}
	return o.dlqOpts.Validate()
}

func newDLQListCmd() *cobra.Command {
	opts := &dlqListOpts{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead deliveries, newest first",
		Long: `List dead deliveries, newest first: the id (for show, retry and remove), the
state (cancelled: a permanent failure; discarded: attempts exhausted), the
observer, the action (type and index in the observer's actions), the change
(entity and id), the attempts, when it died and the first line of its last
error. Reads only.`,
		Example: `  fraiseql-observers dlq list --limit 20
  fraiseql-observers dlq list --observer obs-webhook --since 24h --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runDLQList(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	opts.dlqOpts.register(cmd)
	opts.dlqFilterFlags.register(cmd)
	cmd.Flags().IntVar(&opts.Limit, "limit", 20, "show at most this many")
	cmd.Flags().IntVar(&opts.Offset, "offset", 0, "skip this many of the newest first")
	return cmd
}

// dlqListView is `dlq list --format json`.
type dlqListView struct {
	Total      int64                   `json:"total"` // dead deliveries matching the filters
	Offset     int                     `json:"offset"`
	Limit      int                     `json:"limit"`
	Deliveries []obsriver.DeadDelivery `json:"deliveries"`
}

func runDLQList(ctx context.Context, opts *dlqListOpts, w io.Writer) error {
	f, err := opts.filter()
	if err != nil {
		return err
	}
	return withDLQ(ctx, opts.DatabaseURL, func(ctx context.Context, q *obsriver.DLQ) error {
		page, total, err := q.List(ctx, f, opts.Limit, opts.Offset)
		if err != nil {
			return err
		}
		if opts.Format == "json" {
			return writeJSON(w, dlqListView{Total: total, Offset: opts.Offset, Limit: opts.Limit, Deliveries: page})
		}
		return writeDLQList(w, opts, page, total)
	})
}

func writeDLQList(w io.Writer, opts *dlqListOpts, page []obsriver.DeadDelivery, total int64) error {
	if len(page) == 0 {
		msg := "no dead deliveries"
		if total > 0 {
			msg = fmt.Sprintf("no dead deliveries past --offset %d (%s in all)", opts.Offset, plural(int(total), "dead delivery", "dead deliveries"))
		}
		_, err := fmt.Fprintln(w, msg)
		return errors.Wrap(err, "write output")
	}
	if err := writeDeadTable(w, page); err != nil {
		return err
	}
	end := opts.Offset + len(page)
	more := ""
	if int64(end) < total {
		more = fmt.Sprintf("; next: --offset %d", end)
	}
	_, err := fmt.Fprintf(w, "\n%d to %d of %s, newest first%s\n", opts.Offset+1, end, plural(int(total), "dead delivery", "dead deliveries"), more)
	return errors.Wrap(err, "write output")
}
