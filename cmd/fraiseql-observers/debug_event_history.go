package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// historyReport is the --format json output of debug-event --history.
type historyReport struct {
	Table      string        `json:"table"`
	EntityType string        `json:"entity_type,omitempty"`
	Kind       string        `json:"kind,omitempty"`
	Limit      int           `json:"limit"`
	Events     []historyLine `json:"events"` // newest first
}

// historyLine is one change and its outcome.
type historyLine struct {
	PK         int64       `json:"pk"`
	ID         string      `json:"id"`
	CreatedAt  time.Time   `json:"created_at"`
	EntityType string      `json:"entity_type"`
	EntityID   string      `json:"entity_id"`
	Kind       string      `json:"kind"`
	Config     configRef   `json:"config"`
	Outcome    outcomeView `json:"outcome"`
	// AuditTrail is the change's records in the audit trail, when it is on.
	AuditTrail auditTrailView `json:"audit_trail"`
}

func runDebugHistory(ctx context.Context, e *debugEnv, opts *debugEventOpts, w io.Writer) error {
	var kinds []string
	if opts.kind != "" {
		kinds = opts.kind.Spellings()
	}
	found, err := e.log.Recent(ctx, e.pool, opts.EntityType, kinds, opts.History)
	if err != nil {
		return withExitCode(exitFailure, errors.WithHint(err, "is --table right? (read "+e.table+")"))
	}
	rep := historyReport{Table: e.table, EntityType: opts.EntityType, Kind: string(opts.kind), Limit: opts.History, Events: []historyLine{}}
	seqs := make([]int64, len(found))
	for i, f := range found {
		seqs[i] = f.Event.Seq
	}
	dels, err := e.deliveries(ctx, seqs)
	if err != nil {
		return err
	}
	bySeq := map[int64][]obsriver.EventDelivery{}
	for _, d := range dels {
		bySeq[d.Seq] = append(bySeq[d.Seq], d)
	}
	skips, err := e.skipped(ctx, seqs)
	if err != nil {
		return err
	}
	positions := map[string]position{}
	pos := func(id string) (position, error) {
		if p, ok := positions[id]; ok {
			return p, nil
		}
		p, err := e.position(ctx, id)
		positions[id] = p
		return p, err
	}
	trailCfg := e.file
	if trailCfg == nil && e.latest != nil {
		trailCfg = e.latest.Config
	}
	trail, trailErr := auditTrail(ctx, e.pool, trailCfg)
	for _, fd := range found {
		ev := fd.Event
		f, err := e.facts(ctx, fd, bySeq[ev.Seq], skips[ev.Seq], pos)
		if err != nil {
			return err
		}
		dd, err := e.dedup(ctx, f)
		if err != nil {
			return err
		}
		l := historyLine{PK: ev.Seq, ID: ev.ID, CreatedAt: ev.CreatedAt, EntityType: ev.EntityType,
			EntityID: ev.EntityID, Kind: ev.RawKind, Config: f.choice.ref, Outcome: f.outcome(dd), AuditTrail: auditOf(ctx, trail, ev.Seq, "", 0)}
		if trailErr != nil {
			l.AuditTrail = auditTrailView{Error: trailErr.Error(), Records: []storage.AuditRecord{}}
		}
		rep.Events = append(rep.Events, l)
	}
	if opts.Format == "json" {
		err = writeJSON(w, rep)
	} else {
		err = writeHistoryText(w, &rep)
	}
	if err != nil {
		return err
	}
	if len(rep.Events) == 0 {
		return withExitCode(exitFailure, errors.WithHintf(errors.Newf("no change found in %s", e.table),
			"entity types are case-sensitive (Order, not order); is --table right?%s", kindHint(opts.kind)))
	}
	return nil
}

func kindHint(k observers.Kind) string {
	if k == "" {
		return ""
	}
	return fmt.Sprintf(" --kind %s matches modification_type %s", strings.ToLower(string(k)), strings.Join(k.Spellings(), ", "))
}

func writeHistoryText(w io.Writer, rep *historyReport) error {
	var b strings.Builder
	what := "changes"
	if rep.EntityType != "" {
		what += " of " + rep.EntityType
	}
	if rep.Kind != "" {
		what += " (" + rep.Kind + ")"
	}
	fmt.Fprintf(&b, "The last %d %s in %s, newest first: %d found\n", rep.Limit, what, rep.Table, len(rep.Events))
	if len(rep.Events) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PK\tID\tCREATED\tENTITY\tKIND\tOUTCOME")
		for _, l := range rep.Events {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\t%s\t%s\n", l.PK, l.ID, fmtTime(l.CreatedAt), l.EntityType, l.EntityID, l.Kind, l.Outcome.Summary)
		}
		if err := tw.Flush(); err != nil {
			return errors.Wrap(err, "write output")
		}
		if !rep.Events[0].AuditTrail.Off {
			for _, l := range rep.Events {
				b.WriteString("\n")
				writeAuditLines(&b, fmt.Sprintf("Audit trail of change %d", l.PK), l.AuditTrail)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}
