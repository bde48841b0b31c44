package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// auditTrailMax bounds the records debug-event and dlq show read per
// change.
const auditTrailMax = 200

// auditTrailView is what debug-event --history and dlq show say of the audit
// trail: its records for a change, oldest first, or why there are none.
type auditTrailView struct {
	Backend string                `json:"backend,omitempty"`
	Records []storage.AuditRecord `json:"records"`
	// Off says the audit trail is off (audit.enabled) in the configuration
	// run loaded last; Error that it could not be read.
	Off   bool   `json:"off,omitempty"`
	Error string `json:"error,omitempty"`
}

// auditTrail opens the audit trail of cfg (the configuration run loaded
// last when nil); nil with a nil error when it is off.
func auditTrail(ctx context.Context, pool *pgxpool.Pool, cfg *observers.Config) (storage.Audit, error) {
	if cfg == nil {
		c, _, err := commandConfig(ctx, pool, "")
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if !cfg.Audit.Enabled {
		return nil, nil
	}
	b, err := daemon.OpenSearchBackends(cfg, pool, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	return b.Audit, nil
}

// auditOf reads the records of change seq from a (nil: off), those of one
// observer's action when observer is not "", oldest first. A failure is
// reported in the view, not returned: the audit trail adds to what the
// command shows from the database.
func auditOf(ctx context.Context, a storage.Audit, seq int64, observer string, action int) auditTrailView {
	if a == nil {
		return auditTrailView{Off: true, Records: []storage.AuditRecord{}}
	}
	v := auditTrailView{Backend: a.Backend(), Records: []storage.AuditRecord{}}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	page, err := a.Search(qctx, storage.AuditQuery{EventSeq: seq, ObserverID: observer, Limit: auditTrailMax})
	if err != nil {
		v.Error = errors.Wrapf(err, "read the %s audit trail", a.Backend()).Error()
		return v
	}
	for _, r := range page.Records {
		if observer == "" || r.ActionIndex == action {
			v.Records = append(v.Records, r)
		}
	}
	slices.Reverse(v.Records)
	return v
}

// writeAuditLines writes v's records as indented lines under a heading.
func writeAuditLines(w io.Writer, heading string, v auditTrailView) {
	switch {
	case v.Off:
		fmt.Fprintf(w, "%-13s off (audit.enabled in the configuration run loaded last)\n", heading+":")
		return
	case v.Error != "":
		fmt.Fprintf(w, "%-13s %s\n", heading+":", v.Error)
		return
	case len(v.Records) == 0:
		fmt.Fprintf(w, "%-13s no records (backend %s)\n", heading+":", v.Backend)
		return
	}
	fmt.Fprintf(w, "%s (backend %s, oldest first):\n", heading, v.Backend)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	for _, r := range v.Records {
		who := "listener"
		if r.ObserverID != "" {
			who = fmt.Sprintf("%s %s[%d] attempt %d, %s", r.ObserverID, r.ActionType, r.ActionIndex, r.Attempt,
				time.Duration(r.DurationMS)*time.Millisecond)
		}
		errText := ""
		if r.Error != "" {
			errText = oneLine(r.Error, 160)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), r.Status, who, errText)
	}
	_ = tw.Flush()
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}
