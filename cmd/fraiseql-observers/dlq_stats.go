package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

type dlqStatsOpts struct {
	dlqOpts
	dlqFilterFlags
	By string
}

func (o *dlqStatsOpts) Validate() error {
	switch o.By {
	case obsriver.ByObserver, obsriver.ByActionType, obsriver.ByError:
	default:
		return errors.WithHint(errors.Newf("--by %q is not supported", o.By), "use --by observer, action-type or error")
	}
	return o.dlqOpts.Validate()
}

func newDLQStatsCmd() *cobra.Command {
	opts := &dlqStatsOpts{}
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count dead deliveries by observer, action type or error",
		Long: `Count the dead deliveries (those the filters select) grouped by observer,
action type or error (the first line of the last error), largest group first,
with how many were cancelled (a permanent failure) and discarded (attempts
exhausted) and when the oldest and the newest died. Reads only.`,
		Example: "  fraiseql-observers dlq stats\n  fraiseql-observers dlq stats --by error --since 24h",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runDLQStats(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	opts.dlqOpts.register(cmd)
	opts.dlqFilterFlags.register(cmd)
	cmd.Flags().StringVar(&opts.By, "by", obsriver.ByObserver, "group by observer, action-type or error")
	return cmd
}

// dlqStatsView is `dlq stats --format json`.
type dlqStatsView struct {
	By     string               `json:"by"`
	Total  int64                `json:"total"`
	Groups []obsriver.DeadGroup `json:"groups"`
}

func runDLQStats(ctx context.Context, opts *dlqStatsOpts, w io.Writer) error {
	f, err := opts.filter()
	if err != nil {
		return err
	}
	return withDLQ(ctx, opts.DatabaseURL, func(ctx context.Context, q *obsriver.DLQ) error {
		groups, err := q.Stats(ctx, f, opts.By)
		if err != nil {
			return err
		}
		v := dlqStatsView{By: opts.By, Groups: groups}
		for _, g := range groups {
			v.Total += g.Count
		}
		if opts.Format == "json" {
			return writeJSON(w, v)
		}
		return writeDLQStats(w, v)
	})
}

func writeDLQStats(w io.Writer, v dlqStatsView) error {
	if len(v.Groups) == 0 {
		_, err := fmt.Fprintln(w, "no dead deliveries")
		return errors.Wrap(err, "write output")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tDEAD\tCANCELLED\tDISCARDED\tOLDEST\tNEWEST\n", strings.ToUpper(v.By))
	var cancelled, discarded int64
	for _, g := range v.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", orDash(g.Key), g.Count, g.Cancelled, g.Discarded, fmtTime(g.Oldest), fmtTime(g.Newest))
		cancelled, discarded = cancelled+g.Cancelled, discarded+g.Discarded
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\n", v.Total, cancelled, discarded)
	return errors.Wrap(tw.Flush(), "write output")
}
