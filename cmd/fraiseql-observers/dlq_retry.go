package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

type dlqRetryOpts struct {
	dlqOpts
	DryRun bool
}

func newDLQRetryCmd() *cobra.Command {
	opts := &dlqRetryOpts{}
	cmd := &cobra.Command{
		Use:   "retry ID...",
		Short: "Put dead deliveries back, with fresh attempts and the same webhook-id",
		Long: `Put exactly these deliveries back (not the rest of their events, not the other
actions): each gets the full attempts of its observer's retry policy and starts
at once, and it is sent with the same webhook-id as before. A dead action job is
made available again in place (its errors are kept, and its metadata notes the
retry under dlq_retries); a delivery of a dead batch job continues as a new
action job, and the batch job marks it retried. A delivery that is not dead
(already retried, delivered, still running) is skipped with the reason.

Exit code 1 when any delivery was skipped, failed or not found.`,
		Example: "  fraiseql-observers dlq retry 123\n  fraiseql-observers dlq retry 123 124 45.2 --dry-run",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			ids, err := parseDeliveryIDs(args)
			if err != nil {
				return err
			}
			return runDLQChange(cmd.Context(), &opts.dlqOpts, ids, dlqRetry, opts.DryRun, cmd.OutOrStdout())
		},
	}
	opts.register(cmd)
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "change nothing; say what would be retried")
	return cmd
}

type dlqRetryAllOpts struct {
	dlqOpts
	dlqFilterFlags
	DryRun bool
}

func newDLQRetryAllCmd() *cobra.Command {
	opts := &dlqRetryAllOpts{}
	cmd := &cobra.Command{
		Use:   "retry-all",
		Short: "Retry every dead delivery the filters select",
		Long: `Retry every dead delivery the filters select, as dlq retry does, in
transactions of 1,000 deliveries, oldest first, with a progress report on
stderr. Safe to run again: what was retried is no longer dead, and a run that
stopped half way is finished by the next. With --dry-run nothing changes: it
says how many would be retried and lists the newest.`,
		Example: `  fraiseql-observers dlq retry-all --observer obs-webhook --dry-run
  fraiseql-observers dlq retry-all --action-type webhook --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			f, err := opts.filter()
			if err != nil {
				return err
			}
			return runDLQChangeAll(cmd.Context(), &opts.dlqOpts, f, dlqRetry, opts.DryRun, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	opts.dlqOpts.register(cmd)
	opts.dlqFilterFlags.register(cmd)
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "change nothing; say what would be retried")
	return cmd
}

// dlqVerb is retry or remove, as the change commands report it.
type dlqVerb struct {
	name      string // "retry"
	done      string // "retried"
	ing       string // "retrying"
	wouldDone string // "would retry"
}

var (
	dlqRetry  = dlqVerb{name: "retry", done: "retried", ing: "retrying", wouldDone: "would retry"}
	dlqRemove = dlqVerb{name: "remove", done: "removed", ing: "removing", wouldDone: "would remove"}
)

// dlqChangeView is the JSON of retry, retry-all and remove: the counts
// under the verb's name ("retried" or "removed"; with --dry-run what would
// be), then each delivery's outcome (for retry-all and remove --all, only
// the skipped and failed ones), and with --dry-run of the *-all forms the
// newest deliveries selected.
type dlqChangeView struct {
	DryRun     bool                    `json:"dry_run"`
	Counts     map[string]int          `json:"-"`
	Results    []obsriver.Outcome      `json:"results"`
	Deliveries []obsriver.DeadDelivery `json:"deliveries,omitempty"`
	Seconds    float64                 `json:"seconds"`
}

func (v dlqChangeView) write(w io.Writer) error {
	m := map[string]any{"dry_run": v.DryRun, "results": v.Results, "seconds": v.Seconds}
	for k, n := range v.Counts {
		m[k] = n
	}
	if v.Deliveries != nil {
		m["deliveries"] = v.Deliveries
	}
	return writeJSON(w, m)
}

func newChangeView(verb dlqVerb, s *obsriver.Summary, dryRun bool, took time.Duration) dlqChangeView {
	v := dlqChangeView{DryRun: dryRun, Results: s.Outcomes, Seconds: took.Seconds(),
		Counts: map[string]int{verb.done: s.Done, "skipped": s.Skipped, "failed": s.Failed}}
	if v.Results == nil {
		v.Results = []obsriver.Outcome{}
	}
	return v
}

// runDLQChange retries or removes the deliveries ids.
func runDLQChange(ctx context.Context, opts *dlqOpts, ids []obsriver.DeliveryID, verb dlqVerb, dryRun bool, w io.Writer) error {
	return withDLQ(ctx, opts.DatabaseURL, func(ctx context.Context, q *obsriver.DLQ) error {
		start := time.Now()
		change := q.Retry
		if verb == dlqRemove {
			change = q.Remove
		}
		s, err := change(ctx, ids, dryRun)
		if err != nil {
			return err
		}
		if opts.Format == "json" {
			err = newChangeView(verb, s, dryRun, time.Since(start)).write(w)
		} else {
			err = writeChangeText(w, verb, s, dryRun, true)
		}
		if err != nil {
			return err
		}
		return changeExit(s)
	})
}

// changeExit is exit code 1 when a delivery was skipped, failed or not
// found, with a hint for ids that name nothing.
func changeExit(s *obsriver.Summary) error {
	for _, o := range s.Outcomes {
		if o.NotFound {
			return withExitCode(exitFailure, errors.WithHint(errors.Newf("%s: %s", o.ID, o.Reason),
				"`fraiseql-observers dlq list` shows the ids of dead deliveries"))
		}
	}
	if s.Skipped+s.Failed > 0 {
		return withExitCode(exitFailure, errSilent)
	}
	return nil
}

// writeChangeText writes one line per outcome (every one with each, else
// only the skipped and failed), then the counts.
func writeChangeText(w io.Writer, verb dlqVerb, s *obsriver.Summary, dryRun, each bool) error {
	var b strings.Builder
	for _, o := range s.Outcomes {
		switch {
		case o.Reason != "":
			fmt.Fprintf(&b, "%s %s: %s\n", o.Result, o.ID, o.Reason)
		case !each:
		case o.JobID != 0 && o.ID != fmt.Sprint(o.JobID):
			fmt.Fprintf(&b, "%s %s as job %d\n", strings.ReplaceAll(o.Result, "_", " "), o.ID, o.JobID)
		default:
			fmt.Fprintf(&b, "%s %s\n", strings.ReplaceAll(o.Result, "_", " "), o.ID)
		}
	}
	if !each && len(s.Outcomes) == obsriver.SummaryOutcomesMax {
		fmt.Fprintf(&b, "(only the first %d skipped or failed are listed)\n", obsriver.SummaryOutcomesMax)
	}
	done := verb.done
	if dryRun {
		done = verb.wouldDone
	}
	fmt.Fprintf(&b, "%s %s, skipped %d, failed %d", done, plural(s.Done, "delivery", "deliveries"), s.Skipped, s.Failed)
	if dryRun {
		b.WriteString(" (dry run: nothing changed)")
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

// dlqDryRunSample is how many deliveries a dry run of retry-all or remove
// --all lists.
const dlqDryRunSample = 20

// runDLQChangeAll retries or removes every dead delivery f selects.
func runDLQChangeAll(ctx context.Context, opts *dlqOpts, f obsriver.DeadFilter, verb dlqVerb, dryRun bool, w, stderr io.Writer) error {
	return withDLQ(ctx, opts.DatabaseURL, func(ctx context.Context, q *obsriver.DLQ) error {
		start := time.Now()
		if dryRun {
			return dryRunAll(ctx, q, opts, f, verb, w)
		}
		var p *progress
		report := func(total, done int) {
			if p == nil {
				p = newProgress(stderr, int64(total), verb.ing)
			}
			p.Add(done)
		}
		change := q.RetryAll
		if verb == dlqRemove {
			change = q.RemoveAll
		}
		s, err := change(ctx, f, false, report)
		if p != nil {
			p.Finish()
		}
		if s != nil {
			if opts.Format == "json" {
				if werr := newChangeView(verb, s, false, time.Since(start)).write(w); werr != nil {
					return werr
				}
			} else if werr := writeChangeText(w, verb, s, false, false); werr != nil {
				return werr
			}
		}
		if err != nil || s.Failed > 0 {
			return withExitCode(exitFailure, cmpErr(err, errSilent))
		}
		return nil
	})
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dryRunAll says how many dead deliveries f selects and lists the newest.
func dryRunAll(ctx context.Context, q *obsriver.DLQ, opts *dlqOpts, f obsriver.DeadFilter, verb dlqVerb, w io.Writer) error {
	page, total, err := q.List(ctx, f, dlqDryRunSample, 0)
	if err != nil {
		return err
	}
	if opts.Format == "json" {
		v := newChangeView(verb, &obsriver.Summary{Done: int(total)}, true, 0)
		v.Deliveries = page
		if v.Deliveries == nil {
			v.Deliveries = []obsriver.DeadDelivery{}
		}
		return v.write(w)
	}
	if len(page) > 0 {
		if err := writeDeadTable(w, page); err != nil {
			return err
		}
		if total > int64(len(page)) {
			fmt.Fprintf(w, "… and %d more\n", total-int64(len(page)))
		}
		fmt.Fprintln(w)
	}
	_, err = fmt.Fprintf(w, "%s %s (dry run: nothing changed)\n", verb.wouldDone, plural(int(total), "dead delivery", "dead deliveries"))
	return errors.Wrap(err, "write output")
}
