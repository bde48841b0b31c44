package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
)

// debugDataMax bounds the data shown in text; --format json shows it whole.
const debugDataMax = 1024

func writeDebugText(w io.Writer, r *debugReport) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-14s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	ev := r.Event
	line("Change", "%d  %s  (%s)", ev.PK, ev.ID, r.Table)
	line("Entity", "%s %s", ev.EntityType, ev.EntityID)
	kind := ev.Kind
	if kind == "" {
		kind = "unknown"
	}
	line("Kind", "%s (modification_type %s)", kind, ev.ModificationType)
	line("Created", "%s, txid %d", fmtTime(ev.CreatedAt), ev.TxID)
	line("Data", "%s", shortJSON(ev.Data, debugDataMax))
	if len(ev.Before) > 0 {
		line("Before", "%s", shortJSON(ev.Before, debugDataMax))
	}
	if ev.Undecodable != "" {
		line("Undecodable", "%s", ev.Undecodable)
	}
	line("Outcome", "%s", r.Outcome.Summary)
	line("Config", "%s", configText(r.Config))
	line("Read", "%s", readText(r.Read))
	if len(r.Skipped) == 0 {
		line("Skipped", "no")
	}
	for _, s := range r.Skipped {
		at := ""
		if s.At != nil {
			at = " at " + fmtTime(*s.At)
		}
		line("Skipped", "by listener %s%s: %s", s.ListenerID, at, s.Reason)
	}
	if err := writeVerdicts(&b, r); err != nil {
		return err
	}
	if err := writeDeliveries(&b, r); err != nil {
		return err
	}
	line("Dedup", "%s", dedupText(r.Dedup))
	line("Result cache", "%s", cacheText(r.ResultCache))
	for _, c := range r.ResultCache.Entries {
		by := ""
		if c.SavedByJob != 0 {
			by = fmt.Sprintf(", saved by job %d (sent, not answered from the cache)", c.SavedByJob)
		}
		fmt.Fprintf(&b, "  %s result %d saved %s, expires %s%s\n", c.ActionType, c.Status, fmtTime(c.SavedAt), fmtTime(c.ExpiresAt), by)
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}

// shortJSON renders raw compact, cut to max bytes with a note.
func shortJSON(raw json.RawMessage, limit int) string {
	if len(raw) == 0 {
		return "null"
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		c.Reset()
		c.Write(raw)
	}
	s := c.String()
	if len(s) <= limit {
		return s
	}
	return fmt.Sprintf("%s (%d bytes; --format json shows all)", observers.Shorten(s, limit), len(raw))
}

func configText(c configRef) string {
	switch c.Source {
	case "file":
		return fmt.Sprintf("file %s, listener %s (%s)", c.File, c.ListenerID, c.Why)
	case "none":
		return "none: " + c.Why
	}
	return fmt.Sprintf("version %d, listener %s (%s)", c.Version, c.ListenerID, c.Why)
}

func readText(v readView) string {
	switch v.State {
	case "read":
		return fmt.Sprintf("yes (listener %s's checkpoint is change %d)", v.ListenerID, v.CheckpointPK)
	case "no_checkpoint":
		return fmt.Sprintf("no: listener %s has never run", v.ListenerID)
	}
	s := fmt.Sprintf("not yet: after listener %s's checkpoint (change %d)", v.ListenerID, v.CheckpointPK)
	if v.HeldByHorizon {
		s += "; an older transaction is still open, so it cannot be read yet"
	}
	return s + "; fraiseql-observers status shows the listener's leader, lag and horizon blocker"
}

func writeVerdicts(b *strings.Builder, r *debugReport) error {
	if len(r.Observers) == 0 {
		fmt.Fprintf(b, "%-14s none\n", "Observers:")
		return nil
	}
	fmt.Fprintf(b, "%-14s %d, %d matched\n", "Observers:", len(r.Observers), r.Outcome.Matched)
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  OBSERVER\tMATCHED\tACTIONS\tWHY NOT")
	for _, v := range r.Observers {
		yes, why := "yes", ""
		if !v.Matched {
			yes, why = "no", v.Reason+": "+v.Detail
			if v.Condition != "" && v.Reason == "condition_false" {
				why += " (" + v.Condition + ")"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", v.Observer, yes, strings.Join(v.Actions, ", "), why)
	}
	return errors.Wrap(tw.Flush(), "write output")
}

func writeDeliveries(b *strings.Builder, r *debugReport) error {
	if len(r.Deliveries) == 0 {
		fmt.Fprintf(b, "%-14s none held\n", "Deliveries:")
		return nil
	}
	fmt.Fprintf(b, "%-14s %d\n", "Deliveries:", len(r.Deliveries))
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  JOB\tOBSERVER\tACTION\tSTATUS\tSTATE\tATTEMPTS\tCREATED\tFINISHED\tTOOK\tWEBHOOK-ID")
	for _, d := range r.Deliveries {
		job := fmt.Sprint(d.JobID)
		if d.BatchJobID != 0 {
			job += fmt.Sprintf(" (batch %d)", d.BatchJobID)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d %s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", job, d.Observer, d.Action, d.ActionType, d.Status, d.State,
			d.Attempt, d.MaxAttempts, fmtTime(d.CreatedAt), fmtTimePtr(d.FinalizedAt), took(d), d.MessageID)
	}
	if err := tw.Flush(); err != nil {
		return errors.Wrap(err, "write output")
	}
	for _, d := range r.Deliveries {
		if d.Snoozes > 0 {
			fmt.Fprintf(b, "    job %d: put back %d times without an attempt (an open breaker or no free slot)\n", d.JobID, d.Snoozes)
		}
		if !d.Dead() && d.State != "completed" {
			fmt.Fprintf(b, "    job %d: next attempt at %s\n", d.JobID, fmtTime(d.ScheduledAt))
		}
		for _, e := range d.Errors {
			msg, _, _ := strings.Cut(e.Error, "\n")
			fmt.Fprintf(b, "    job %d attempt %d at %s: %s\n", d.JobID, e.Attempt, fmtTime(e.At), msg)
		}
	}
	return nil
}

// took is how long the delivery's job ran from its last attempt to its
// end; "-" while it has not ended, and for a job that continues a batch's
// delivery whose only attempt ran in the batch job (the follow-up is
// recorded attempted and finished at once).
func took(d deliveryView) string {
	if d.AttemptedAt == nil || d.FinalizedAt == nil || (d.BatchJobID != 0 && d.Attempt <= 1) {
		return "-"
	}
	return d.FinalizedAt.Sub(*d.AttemptedAt).Round(time.Millisecond).String()
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

func dedupText(d dedupView) string {
	s := strings.ReplaceAll(d.Outcome, "_", " ")
	if d.Outcome == "duplicate" {
		s += fmt.Sprintf(" of change %d (%s)", d.DuplicateOfPK, d.DuplicateOfID)
	}
	if d.Enabled {
		s += fmt.Sprintf("; %s backend, window %s", d.Backend, d.Window)
		switch {
		case d.KeyHeld != nil && *d.KeyHeld && d.KeyExpiresAt != nil:
			s += ", key held until " + fmtTime(*d.KeyExpiresAt)
		case d.KeyHeld != nil:
			s += ", key not held now"
		}
	}
	if d.Note != "" {
		s += "; " + d.Note
	}
	return s
}

func cacheText(c resultCacheView) string {
	if !c.Enabled {
		return c.Note
	}
	return fmt.Sprintf("on (%s backend, ttl %s): %s", c.Backend, c.TTL, c.Note)
}
