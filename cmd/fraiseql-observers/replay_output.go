package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers/replay"
)

// describeSelection says in words which changes sel selects.
func describeSelection(sel replay.Selection) string {
	var parts []string
	if sel.FromPK != nil {
		parts = append(parts, fmt.Sprintf("pk >= %d", *sel.FromPK))
	}
	if sel.ToPK != nil {
		parts = append(parts, fmt.Sprintf("pk < %d", *sel.ToPK))
	}
	if sel.From != nil {
		parts = append(parts, "created_at >= "+fmtTime(*sel.From))
	}
	if sel.To != nil {
		parts = append(parts, "created_at < "+fmtTime(*sel.To))
	}
	if len(sel.EntityTypes) > 0 {
		parts = append(parts, "object_type "+strings.Join(sel.EntityTypes, " or "))
	}
	out := "every change"
	if len(parts) > 0 {
		out = "changes with " + strings.Join(parts, ", ")
	}
	if len(sel.Observers) > 0 {
		out += ", for observers " + strings.Join(sel.Observers, ", ")
	}
	return out
}

func fmtPosition(p replay.Position) string { return fmt.Sprintf("txid %d, pk %d", p.TxID, p.PK) }

// writeReplayHeader says what the replay reads before its batches run.
func writeReplayHeader(w io.Writer, rep *replay.Replay, resumed bool) error {
	var b strings.Builder
	how := "started"
	if resumed {
		how = fmt.Sprintf("resumed (started %s, %d of %d changes read so far)", fmtTime(rep.StartedAt), rep.Counts.EventsRead, rep.Total)
	}
	fmt.Fprintf(&b, "Replay %d %s\n", rep.ID, how)
	fmt.Fprintf(&b, "  Selection:  %s\n", describeSelection(rep.Parameters.Selection))
	fmt.Fprintf(&b, "  Bound:      listener group %s's checkpoint (%s) when the replay started: %d changes\n",
		rep.ListenerID, fmtPosition(rep.Bound), rep.Total)
	if rep.Parameters.Beyond > 0 {
		fmt.Fprintf(&b, "  Left out:   %d selected changes after the checkpoint (the listener had not passed them)\n", rep.Parameters.Beyond)
	}
	fmt.Fprintf(&b, "  Observers:  configuration version %d\n", rep.ConfigVersion)
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

// writeCounts writes the counts and the deliveries per action.
func writeCounts(b *strings.Builder, c replay.Counts, verb string) error {
	fmt.Fprintf(b, "  Changes:    %d read, %d matched, %d skipped (undecodable or too large)\n", c.EventsRead, c.EventsMatched, c.EventsSkipped)
	if c.ConditionErrors > 0 {
		fmt.Fprintf(b, "  Conditions: %d failed (treated as no match)\n", c.ConditionErrors)
	}
	fmt.Fprintf(b, "  Deliveries: %d %s\n", c.Deliveries, verb)
	if len(c.ByAction) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    OBSERVER\tACTION\tTYPE\tDELIVERIES")
	for _, a := range c.ByAction {
		fmt.Fprintf(tw, "    %s\t%d\t%s\t%d\n", a.Observer, a.Action, a.ActionType, a.Deliveries)
	}
	return errors.Wrap(tw.Flush(), "write output")
}

// writeReplaySummary says what the replay did and who delivers its jobs;
// live is the running instances (-1: unknown).
func writeReplaySummary(w io.Writer, rep *replay.Replay, live int64) error {
	var b strings.Builder
	switch rep.State {
	case replay.StateFinished:
		fmt.Fprintf(&b, "Replay %d finished\n", rep.ID)
	case replay.StateCancelled:
		fmt.Fprintf(&b, "Replay %d was cancelled at %s\n", rep.ID, fmtPosition(rep.Position))
	default:
		fmt.Fprintf(&b, "Replay %d stopped at %s, %d of %d changes read; it resumes from there\n",
			rep.ID, fmtPosition(rep.Position), rep.Counts.EventsRead, rep.Total)
	}
	if err := writeCounts(&b, rep.Counts, "enqueued"); err != nil {
		return err
	}
	switch {
	case rep.Counts.Deliveries == 0:
	case live > 0:
		fmt.Fprintf(&b, "  Delivery:   by the workers of the %d running instance(s), with the original webhook-ids\n", live)
	case live == 0:
		b.WriteString("  Delivery:   no `fraiseql-observers run` instance is running: the jobs wait in the queue until one starts\n")
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

// writeDryRun writes a dry run's report.
func writeDryRun(w io.Writer, res *dryRunResult) error {
	var b strings.Builder
	b.WriteString("Dry run: nothing was enqueued or recorded\n")
	fmt.Fprintf(&b, "  Selection:  %s\n", describeSelection(res.Selection))
	fmt.Fprintf(&b, "  Bound:      listener group %s's checkpoint (%s): %d changes\n", res.ListenerID, fmtPosition(res.Bound), res.Total)
	if res.Beyond > 0 {
		fmt.Fprintf(&b, "  Left out:   %d selected changes after the checkpoint (the listener has not passed them)\n", res.Beyond)
	}
	if res.ConfigVersion > 0 {
		fmt.Fprintf(&b, "  Observers:  configuration version %d\n", res.ConfigVersion)
	} else {
		b.WriteString("  Observers:  the --config file\n")
	}
	if err := writeCounts(&b, res.Counts, "would be enqueued"); err != nil {
		return err
	}
	if res.Unfinished > 0 {
		fmt.Fprintf(&b, "  Unfinished: replay %d has these parameters; running without --dry-run resumes it\n", res.Unfinished)
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

// replayState is a replay's state as --list shows it: an unfinished replay
// no process runs is "interrupted".
func replayState(r *replay.Replay) string {
	if r.State == replay.StateRunning && !r.Active {
		return "interrupted"
	}
	return r.State
}

// listReplays writes the latest replays.
func listReplays(ctx context.Context, pool *pgxpool.Pool, opts *replayOpts, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reps, err := replay.List(ctx, pool, opts.Limit)
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	if opts.Format == "json" {
		type listed struct {
			*replay.Replay
			Shown string `json:"shown_state"` // running, interrupted, finished, cancelled
		}
		out := make([]listed, len(reps))
		for i, r := range reps {
			out[i] = listed{r, replayState(r)}
		}
		return writeJSON(w, map[string]any{"replays": out})
	}
	if len(reps) == 0 {
		_, err := io.WriteString(w, "No replays.\n")
		return errors.Wrap(err, "write output")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSTARTED\tREAD\tDELIVERIES\tCONFIG\tSELECTION")
	for _, r := range reps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%d\t%d\t%s\n", r.ID, replayState(r), fmtTime(r.StartedAt),
			r.Counts.EventsRead, r.Total, r.Counts.Deliveries, r.ConfigVersion, describeRequest(r.Parameters.Request))
	}
	return errors.Wrap(tw.Flush(), "write output")
}

// describeRequest is the replay's flags as typed.
func describeRequest(req replay.Request) string {
	s := "--from " + req.From
	if req.To != "" {
		s += " --to " + req.To
	}
	for _, o := range req.Observers {
		s += " --observer " + o
	}
	for _, e := range req.EntityTypes {
		s += " --entity-type " + e
	}
	if strings.HasPrefix(req.Config, "file:") {
		s += " --config (file)"
	}
	return s
}

// cancelReplay marks an unfinished replay cancelled.
func cancelReplay(ctx context.Context, pool *pgxpool.Pool, opts *replayOpts, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := replay.Get(ctx, pool, opts.Cancel)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	ok, err := replay.Cancel(ctx, pool, rep.ID)
	if err != nil {
		return withExitCode(exitFailure, err)
	}
	if !ok {
		return withExitCode(exitFailure, errors.WithHint(errors.Newf("replay %d is %s, not unfinished", rep.ID, rep.State),
			"only an unfinished replay can be cancelled"))
	}
	if opts.Format == "json" {
		return writeJSON(w, map[string]any{"cancelled": rep.ID})
	}
	_, err = fmt.Fprintf(w, "Replay %d cancelled: it will not be resumed; its jobs already enqueued stay\n", rep.ID)
	return errors.Wrap(err, "write output")
}
