package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers/status"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
)

// statusTimeout bounds the whole status read once connected.
const statusTimeout = 30 * time.Second

type statusOpts struct {
	DatabaseURL string
	Format      string
	// ListenerID is the listener group; empty means the first one found.
	ListenerID string
	// Table is the change log the lag is measured on.
	Table string
	// Detailed adds per-instance details and the blocker's query to the text.
	Detailed bool
}

func (o *statusOpts) Validate() error {
	if o.DatabaseURL == "" {
		return errors.WithHint(errors.New("--database-url is empty"), "pass --database-url or set DATABASE_URL")
	}
	if strings.TrimSpace(o.Table) == "" {
		return errors.WithHint(errors.New("--table is empty"), "pass the change log as schema.table, e.g. core.tb_entity_change_log")
	}
	return validateFormat(o.Format)
}

func newStatusCmd() *cobra.Command {
	opts := &statusOpts{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the listener group's leader, instances, lag, workers, queue and breakers",
		Long: `Show one listener group: its leader and every instance with its heartbeat,
the checkpoint and how far it lags the change log, the transaction holding the
committed horizon back (if any), the workers of each River queue (jobs running
/ the max workers of the healthy instances), River job counts by state, the
dead-letter queue and every circuit breaker by endpoint and state (one line
each). Reads only; it changes nothing.

Healthy means exactly one leader whose heartbeat is fresh (younger than three
heartbeat intervals), no open circuit breaker, and no undelivered change older
than five minutes. Exit code 0 when healthy, 1 when degraded, 2 when the
database cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runStatus(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	cmd.Flags().StringVar(&opts.ListenerID, "listener", "", `listener id (default: the first in observer_checkpoints, else "default")`)
	cmd.Flags().StringVar(&opts.Table, "table", "core.tb_entity_change_log", "change log to measure the lag on (listener.table)")
	cmd.Flags().BoolVar(&opts.Detailed, "detailed", false, "show each instance's version, address and start, and the blocking query")
	return cmd
}

func runStatus(ctx context.Context, opts *statusOpts, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	pool, err := daemon.Connect(ctx, opts.DatabaseURL)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if err := daemon.CheckSchema(ctx, pool); err != nil {
		return withExitCode(exitFailure, err)
	}
	st, err := status.Gather(ctx, pool, status.Params{
		ListenerID: opts.ListenerID,
		Table:      opts.Table,
		JobCounts:  obsriver.CountJobs,
		DeadCounts: obsriver.CountDead,
		RunningJobs: func(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
			return obsriver.RunningByQueue(ctx, tx)
		},
	})
	if err != nil {
		return withExitCode(exitFailure, err)
	}

	if opts.Format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return errors.Wrap(err, "write output")
		}
	} else if err := writeStatusText(w, opts, st); err != nil {
		return err
	}
	if !st.Healthy {
		return withExitCode(exitFailure, errSilent)
	}
	return nil
}

func writeStatusText(w io.Writer, opts *statusOpts, st *status.Status) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-18s %s\n", label+":", fmt.Sprintf(format, args...))
	}

	group := st.ListenerID
	if len(st.OtherListenerIDs) > 0 {
		group += fmt.Sprintf("  (other listeners: %s; choose with --listener)", strings.Join(st.OtherListenerIDs, ", "))
	}
	line("Listener", "%s", group)
	line("Status", "%s", st.Status)
	for _, p := range st.Problems {
		line("Problem", "%s", p)
	}
	if l := st.Leader; l != nil {
		since := ""
		if l.Since != nil {
			since = " since " + fmtTime(*l.Since)
		}
		line("Leader", "%s (host %s, pid %d)%s, heartbeat %.1fs ago", l.InstanceID, l.Host, l.PID, since, l.HeartbeatAgeSeconds)
	} else {
		line("Leader", "none")
	}

	line("Instances", "%d of %d healthy (heartbeat within %.0fs)", st.HealthyListeners, len(st.Listeners), st.HeartbeatLimitSeconds)
	if err := writeInstances(&b, opts, st); err != nil {
		return err
	}

	if cp := st.Checkpoint; cp != nil {
		line("Checkpoint", "event %d, txid %d, %d events processed, last at %s",
			cp.EventID, cp.TxID, cp.EventsProcessed, fmtTime(cp.LastProcessedAt))
	} else {
		line("Checkpoint", "none (the listener has never run)")
	}
	switch {
	case st.LagEvents == 0:
		line("Lag", "caught up (%s)", st.Table)
	default:
		more := ""
		if st.LagEventsCapped {
			more = "+"
		}
		line("Lag", "%d%s events behind, oldest %.1fs old (%s)", st.LagEvents, more, st.LagSeconds, st.Table)
	}
	if hb := st.HorizonBlocker; hb != nil {
		line("Horizon blocker", "pid %d (database %s, user %s), transaction open %.1fs, %s",
			hb.PID, orDash(hb.Database), orDash(hb.Username), hb.AgeSeconds, orDash(hb.State))
		if opts.Detailed && hb.Query != "" {
			line("Blocking query", "%s", strings.Join(strings.Fields(hb.Query), " "))
		}
	}
	line("Workers", "%s", workersText(st.Workers))
	q := st.Queue
	line("Queue", "available %d, running %d, retryable %d, scheduled %d, completed %d",
		q.Available, q.Running, q.Retryable, q.Scheduled, q.Completed)
	line("DLQ", "%d (discarded %d, cancelled %d)", st.DLQSize, st.DLQ.Discarded, st.DLQ.Cancelled)
	if len(st.CircuitBreakers) == 0 {
		line("Circuit breakers", "none")
	} else {
		open := 0
		for _, cb := range st.CircuitBreakers {
			if cb.Open {
				open++
			}
		}
		line("Circuit breakers", "%d, %d open", len(st.CircuitBreakers), open)
		writeBreakers(&b, st)
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeInstances writes the table of the group's instances.
func writeInstances(b *strings.Builder, opts *statusOpts, st *status.Status) error {
	if len(st.Listeners) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	header := "  INSTANCE\tROLE\tHOST\tPID\tHEARTBEAT\tHEALTH"
	if opts.Detailed {
		header += "\tVERSION\tADDRESS\tSTARTED"
	}
	fmt.Fprintln(tw, header)
	for _, in := range st.Listeners {
		health := "healthy"
		if !in.Healthy {
			health = "unhealthy"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%.1fs ago\t%s", in.ID, in.Role, orDash(in.Host), in.PID, in.HeartbeatAgeSeconds, health)
		if opts.Detailed {
			started := "-"
			if in.StartedAt != nil {
				started = fmtTime(*in.StartedAt)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", orDash(in.Version), orDash(in.HTTPAddr), started)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return errors.Wrap(err, "write output")
	}
	return nil
}

// workersText is the Workers line: per River queue, jobs running / the
// max workers of the healthy instances ("?" when none reports the queue).
func workersText(ws []status.QueueWorkers) string {
	if len(ws) == 0 {
		return "none: no healthy instance reports its queues' workers, and no job runs"
	}
	parts := make([]string, len(ws))
	instances := 0
	for i, w := range ws {
		limit := "?"
		if w.Limit > 0 {
			limit = fmt.Sprint(w.Limit)
		}
		parts[i] = fmt.Sprintf("%s %d/%s", w.Queue, w.Running, limit)
		instances = max(instances, w.Instances)
	}
	return fmt.Sprintf("%s (running/max workers, %s)", strings.Join(parts, ", "), plural(instances, "healthy instance", "healthy instances"))
}

// writeBreakers writes one "Circuit breaker:" line per breaker: its
// endpoint and state, and for an open one until when.
func writeBreakers(b *strings.Builder, st *status.Status) {
	width := 0
	for _, cb := range st.CircuitBreakers {
		width = max(width, len(cb.Name))
	}
	for _, cb := range st.CircuitBreakers {
		fmt.Fprintf(b, "%-18s %-*s  %s\n", "Circuit breaker:", width, cb.Name, breakerState(cb, st.CheckedAt))
	}
}

// breakerState describes a breaker's state at now (the database's clock).
func breakerState(cb status.BreakerStatus, now time.Time) string {
	switch {
	case cb.Open && cb.Expiry != nil:
		return fmt.Sprintf("open until %s (in %s)", fmtTime(*cb.Expiry), cb.Expiry.Sub(now).Round(time.Second))
	case cb.Open:
		return "open"
	case strings.EqualFold(cb.State, "open") && cb.Expiry != nil:
		return fmt.Sprintf("open period ended %s: half-open at the next request", fmtTime(*cb.Expiry))
	case strings.EqualFold(cb.State, "half-open"):
		return "half-open (probing)"
	}
	return cb.State
}
