package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
)

func newDLQShowCmd() *cobra.Command {
	opts := &dlqOpts{}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show everything about one delivery",
		Long: `Show one delivery (dead or not): the change it was for, read from the change
log; the action as configured in the configuration version it was matched
under, secrets redacted; every attempt's error and time; the retries made from
the dead-letter queue; and the webhook-id it is sent with. Reads only.

ID is a job id (123) or a batch job's delivery (45.2), as dlq list shows.`,
		Example: "  fraiseql-observers dlq show 123\n  fraiseql-observers dlq show 45.2 --format json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			ids, err := parseDeliveryIDs(args)
			if err != nil {
				return err
			}
			return runDLQShow(cmd.Context(), opts, ids[0], cmd.OutOrStdout())
		},
	}
	opts.register(cmd)
	return cmd
}

// dlqShowView is `dlq show --format json`.
type dlqShowView struct {
	obsriver.DeadDelivery
	Dead         bool                `json:"dead"`
	Note         string              `json:"note,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	Event        *dlqEventView       `json:"event"`
	EventError   string              `json:"event_error,omitempty"`
	ActionConfig *actionView         `json:"action_config"` // type, then settings; secrets redacted
	RetryPolicy  *retryView          `json:"retry_policy"`
	ConfigError  string              `json:"config_error,omitempty"`
	Attempts     []dlqAttemptView    `json:"attempts"`
	Retries      []obsriver.DLQRetry `json:"dlq_retries"`
	// AuditTrail is the delivery's records in the audit trail, when it is
	// on.
	AuditTrail auditTrailView `json:"audit_trail"`
}

type dlqEventView struct {
	Seq           int64           `json:"seq"`
	ID            string          `json:"id"`
	Kind          string          `json:"kind"`
	EntityType    string          `json:"entity_type"`
	EntityID      string          `json:"entity_id"`
	CreatedAt     time.Time       `json:"created_at"`
	Data          json.RawMessage `json:"data"`
	Before        map[string]any  `json:"before,omitempty"`
	UpdatedFields []string        `json:"updated_fields,omitempty"`
	UserID        string          `json:"user_id,omitempty"`
	TenantID      string          `json:"tenant_id,omitempty"`
}

type dlqAttemptView struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	Trace   string    `json:"trace,omitempty"`
}

func viewDead(d *obsriver.DeadDetail) dlqShowView {
	v := dlqShowView{DeadDelivery: d.DeadDelivery, Dead: d.Dead, Note: d.Note, CreatedAt: d.CreatedAt,
		Attempts: []dlqAttemptView{}, Retries: d.Retries}
	if v.Retries == nil {
		v.Retries = []obsriver.DLQRetry{}
	}
	if ev := d.Event; ev != nil {
		data := json.RawMessage(ev.RawData)
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		v.Event = &dlqEventView{Seq: ev.Seq, ID: ev.ID, Kind: ev.RawKind, EntityType: ev.EntityType, EntityID: ev.EntityID,
			CreatedAt: ev.CreatedAt, Data: data, Before: ev.Before, UpdatedFields: ev.UpdatedFields, UserID: ev.UserID, TenantID: ev.TenantID}
	}
	if d.EventErr != nil {
		v.EventError = d.EventErr.Error()
	}
	if a := d.ActionConfig(); a != nil {
		av := viewAction(a)
		v.ActionConfig = &av
		r := viewObserver(d.ObserverConfig).Retry
		v.RetryPolicy = &r
	}
	if d.ConfigErr != nil {
		v.ConfigError = d.ConfigErr.Error()
	}
	for _, a := range d.Attempts {
		v.Attempts = append(v.Attempts, dlqAttemptView{Attempt: a.Attempt, At: a.At, Error: a.Error, Trace: a.Trace})
	}
	return v
}

func runDLQShow(ctx context.Context, opts *dlqOpts, id obsriver.DeliveryID, w io.Writer) error {
	return withDLQ(ctx, opts.DatabaseURL, func(ctx context.Context, q *obsriver.DLQ) error {
		d, err := q.Show(ctx, id)
		if errors.Is(err, obsriver.ErrNoDelivery) {
			return withExitCode(exitFailure, errors.WithHint(err, "`fraiseql-observers dlq list` shows the ids of dead deliveries"))
		}
		if err != nil {
			return err
		}
		a, err := auditTrail(ctx, q.Pool(), nil)
		trail := auditOf(ctx, a, d.Seq, d.Observer, d.Action)
		if err != nil {
			trail = auditTrailView{Error: err.Error(), Records: []storage.AuditRecord{}}
		}
		if opts.Format == "json" {
			v := viewDead(d)
			v.AuditTrail = trail
			return writeJSON(w, v)
		}
		return writeDLQShow(w, d, trail)
	})
}

// dlqShowDataMaxBytes cuts the change's data in `dlq show`'s text.
const dlqShowDataMaxBytes = 4096

func writeDLQShow(w io.Writer, d *obsriver.DeadDetail, trail auditTrailView) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-13s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	job := fmt.Sprintf("action job %d", d.JobID)
	if d.ID != fmt.Sprint(d.JobID) {
		job = fmt.Sprintf("delivery %s of batch job %d", strings.TrimPrefix(d.ID, fmt.Sprint(d.JobID)+"."), d.JobID)
	} else if d.BatchJobID != 0 {
		job += fmt.Sprintf(", continuing batch job %d", d.BatchJobID)
	}
	line("Delivery", "%s (%s)", d.ID, job)
	state := d.State
	switch {
	case d.Dead:
		state += fmt.Sprintf(", dead since %s: retry with `fraiseql-observers dlq retry %s`", fmtTime(d.DiedAt), d.ID)
	case d.Note != "":
		state += ": " + d.Note
	}
	line("State", "%s", state)
	line("Observer", "%s, action %d (%s), configuration version %d", d.Observer, d.Action, d.ActionType, d.ConfigVersion)
	line("Attempts", "%d of %d", d.Attempt, d.MaxAttempts)
	line("Webhook-id", "%s", orDash(d.WebhookID))
	writeShowEvent(&b, line, d)
	writeShowAction(&b, line, d)
	writeShowAttempts(&b, d)
	writeAuditLines(&b, "Audit trail", trail)
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

func writeShowEvent(b *strings.Builder, line func(string, string, ...any), d *obsriver.DeadDetail) {
	ev := d.Event
	if ev == nil {
		line("Event", "seq %d: cannot be read: %v", d.Seq, d.EventErr)
		return
	}
	line("Event", "seq %d, id %s: %s %s %s at %s", ev.Seq, ev.ID, ev.EntityType, ev.EntityID, ev.RawKind, fmtTime(ev.CreatedAt))
	data := string(ev.RawData)
	if len(data) > dlqShowDataMaxBytes {
		data = fmt.Sprintf("%s… (%d bytes; --format json shows all)", strings.ToValidUTF8(data[:dlqShowDataMaxBytes], ""), len(ev.RawData))
	}
	line("Data", "%s", orDash(data))
	if len(ev.UpdatedFields) > 0 {
		line("Updated", "%s", strings.Join(ev.UpdatedFields, ", "))
	}
}

func writeShowAction(b *strings.Builder, line func(string, string, ...any), d *obsriver.DeadDetail) {
	a := d.ActionConfig()
	if a == nil {
		line("Action", "unknown: %v", d.ConfigErr)
		return
	}
	line("Action", "%s (configuration version %d; secrets redacted)", a.Type(), d.ConfigVersion)
	writeSettings(b, a.Settings())
	r := viewObserver(d.ObserverConfig).Retry
	line("Retry policy", "%d attempts, %s backoff from %s, at most %s apart", r.MaxAttempts, r.BackoffStrategy, r.InitialDelay, r.MaxDelay)
}

func writeShowAttempts(b *strings.Builder, d *obsriver.DeadDetail) {
	if len(d.Attempts) == 0 && len(d.Retries) == 0 {
		fmt.Fprintf(b, "%-13s none recorded\n", "Errors:")
		return
	}
	fmt.Fprintln(b, "Errors:")
	retries := d.Retries
	for i, a := range d.Attempts {
		for len(retries) > 0 && retries[0].Errors <= i && retries[0].From == "" {
			writeRetryNote(b, retries[0])
			retries = retries[1:]
		}
		msg := strings.ReplaceAll(strings.TrimSpace(a.Error), "\n", "\n                                   ")
		fmt.Fprintf(b, "  attempt %-2d %s  %s\n", a.Attempt, fmtTime(a.At), msg)
	}
	for _, r := range retries {
		writeRetryNote(b, r)
	}
}

func writeRetryNote(b *strings.Builder, r obsriver.DLQRetry) {
	if r.From != "" {
		fmt.Fprintf(b, "  retried     %s  from the dead-letter queue, continuing %s\n", fmtTime(r.At), r.From)
		return
	}
	fmt.Fprintf(b, "  retried     %s  from the dead-letter queue (%s after %s)\n", fmtTime(r.At), r.State,
		plural(r.Attempts, "attempt", "attempts"))
}
