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
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

type searchOpts struct {
	DatabaseURL string
	Format      string
	ConfigPath  string
	Text        string // the positional QUERY words
	Index       string // search the entity documents of this index instead of the audit trail
	EntityType  string
	EntityID    string
	EventID     string
	Observer    string
	ActionType  string
	Status      string
	Since       string
	Until       string
	Limit       int
	After       string
}

func (o *searchOpts) Validate() error {
	if err := validateFormat(o.Format); err != nil {
		return err
	}
	if o.Limit < 1 || o.Limit > storage.MaxLimit {
		return errors.WithHint(errors.Newf("--limit %d is out of range", o.Limit), fmt.Sprintf("use 1 to %d; page with --after", storage.MaxLimit))
	}
	if o.Status != "" && !slices.Contains(storage.AuditStatuses, storage.AuditStatus(o.Status)) {
		return errors.WithHint(errors.Newf("--status %q is not an audit status", o.Status), "use one of "+statusList())
	}
	if o.Index != "" && (o.EventID != "" || o.Observer != "" || o.ActionType != "" || o.Status != "" || o.Since != "" || o.Until != "") {
		return errors.WithHint(errors.New("--index searches entity documents, which have no --event-id, --observer, --action-type, --status, --since or --until"),
			"drop --index to search the audit trail, or keep QUERY, --entity-type and --entity-id")
	}
	return nil
}

func statusList() string {
	s := make([]string, len(storage.AuditStatuses))
	for i, st := range storage.AuditStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func newSearchCmd() *cobra.Command {
	opts := &searchOpts{}
	cmd := &cobra.Command{
		Use:   "search [QUERY]",
		Short: "Search the audit trail (or, with --index, the search action's documents)",
		Long: `Search the audit trail: one record per change the listener read (received,
or skipped) and one per outcome of each delivery attempt (succeeded, failed,
dead, deduplicated, cached), newest first. QUERY is free text over the
records' errors and their changes' data values: every word must occur,
case-insensitive (words are runs of letters and digits). The filters narrow
it; --since and --until take an age (24h, 7d), a date or an RFC 3339 time.

--index INDEX searches the documents the search action keeps in that index
instead (QUERY over their values, --entity-type, --entity-id), ordered by
entity type and id.

The backend (audit.backend, search.backend: postgres or elasticsearch) and
the elasticsearch: connection come from --config, or else from the
configuration loaded last by ` + "`run`" + `; the database from --database-url. Both
backends give the same answers. Exit code 0 (even with no match), 1 when the
backend fails or the audit trail is off, 2 on bad usage.`,
		Example: `  fraiseql-observers search --entity-type Order --since 24h
  fraiseql-observers search --action-type webhook --status failed
  fraiseql-observers search "timed out" --observer order_webhook --format json
  fraiseql-observers search --index orders ada --entity-type Order`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Text = strings.Join(args, " ")
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runSearch(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	f := cmd.Flags()
	f.StringVarP(&opts.ConfigPath, "config", "c", "", "observers YAML whose audit:, search: and elasticsearch: blocks apply (default: the configuration loaded last by run)")
	f.StringVar(&opts.Index, "index", "", "search the entity documents of this index instead of the audit trail")
	f.StringVar(&opts.EntityType, "entity-type", "", "only this entity type (exact, e.g. Order)")
	f.StringVar(&opts.EntityID, "entity-id", "", "only this entity id")
	f.StringVar(&opts.EventID, "event-id", "", "only this change (its uuid or pk)")
	f.StringVar(&opts.Observer, "observer", "", "only this observer's deliveries")
	f.StringVar(&opts.ActionType, "action-type", "", "only this action type (webhook, email, …)")
	f.StringVar(&opts.Status, "status", "", "only this status: "+statusList())
	f.StringVar(&opts.Since, "since", "", "only records at or after this age or time (24h, 7d, 2026-12-01T00:00:00Z)")
	f.StringVar(&opts.Until, "until", "", "only records before this age or time")
	f.IntVar(&opts.Limit, "limit", 50, "show at most this many")
	f.StringVar(&opts.After, "after", "", "the next page: the cursor the previous page printed")
	return cmd
}

// searchReport is the --format json output.
type searchReport struct {
	Backend string                `json:"backend"`
	Records []storage.AuditRecord `json:"records,omitempty"`
	Docs    []storage.DocHit      `json:"documents,omitempty"`
	Next    string                `json:"next,omitempty"` // pass to --after for the next page
}

func runSearch(ctx context.Context, opts *searchOpts, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	since, err := ageOrTime("since", opts.Since)
	if err != nil {
		return err
	}
	until, err := ageOrTime("until", opts.Until)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, opts.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	cfg, source, err := commandConfig(ctx, pool, opts.ConfigPath)
	if err != nil {
		return err
	}
	b, err := daemon.OpenSearchBackends(cfg, pool, os.LookupEnv)
	if err != nil {
		return withExitCode(exitUsage, err)
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if opts.Index != "" {
		page, err := b.Search.Query(qctx, storage.DocQuery{Index: opts.Index, EntityType: opts.EntityType, EntityID: opts.EntityID,
			Text: opts.Text, Limit: opts.Limit, After: opts.After})
		if err != nil {
			return withExitCode(exitFailure, errors.WithHint(errors.Wrapf(err, "search the %s documents of %s", b.Search.Backend(), opts.Index),
				"is the backend reachable? --after must be a cursor a previous page printed"))
		}
		rep := searchReport{Backend: b.Search.Backend(), Docs: page.Hits, Next: page.Next}
		if opts.Format == "json" {
			return writeJSON(w, rep)
		}
		writeDocsText(w, rep)
		return nil
	}
	if b.Audit == nil {
		return withExitCode(exitFailure, errors.WithHint(errors.Newf("the audit trail is off in %s", source),
			"turn it on with `audit: {enabled: true}` (backend postgres or elasticsearch) and restart run; --index INDEX searches the search action's documents"))
	}
	q := storage.AuditQuery{Text: opts.Text, EntityType: opts.EntityType, EntityID: opts.EntityID, ObserverID: opts.Observer,
		ActionType: opts.ActionType, Status: storage.AuditStatus(opts.Status), Since: since, Until: until, Limit: opts.Limit, After: opts.After}
	if opts.EventID != "" {
		if seq, ok := parsePK(opts.EventID); ok {
			q.EventSeq = seq
		} else {
			q.EventID = opts.EventID
		}
	}
	page, err := b.Audit.Search(qctx, q)
	if err != nil {
		return withExitCode(exitFailure, errors.WithHint(errors.Wrapf(err, "search the %s audit trail", b.Audit.Backend()),
			"is the backend reachable? --after must be a cursor a previous page printed"))
	}
	rep := searchReport{Backend: b.Audit.Backend(), Records: page.Records, Next: page.Next}
	if opts.Format == "json" {
		return writeJSON(w, rep)
	}
	writeAuditText(w, rep)
	return nil
}

// ageOrTime reads --since/--until (parseTime); "" is no bound.
func ageOrTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, ok := parseTime(s, time.Now()); ok {
		return t, nil
	}
	return time.Time{}, withExitCode(exitUsage, errors.WithHint(errors.Newf("--%s %q is neither an age nor a time", flag, s),
		"use an age such as 90m, 24h or 7d, a date (2026-12-01) or an RFC 3339 time such as 2026-12-01T09:00:00Z"))
}

func writeAuditText(w io.Writer, r searchReport) {
	if len(r.Records) == 0 {
		fmt.Fprintf(w, "No audit records match (backend %s).\n", r.Backend)
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTATUS\tCHANGE\tENTITY\tKIND\tOBSERVER\tACTION\tATTEMPT\tTOOK\tERROR")
	for _, rec := range r.Records {
		observer, action, attempt, took := "-", "-", "-", "-"
		if rec.ObserverID != "" {
			observer = rec.ObserverID
			action = fmt.Sprintf("%s[%d]", rec.ActionType, rec.ActionIndex)
			attempt = fmt.Sprint(rec.Attempt)
			took = (time.Duration(rec.DurationMS) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\n", rec.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), rec.Status,
			rec.EventSeq, rec.EntityType, rec.EntityID, rec.EventKind, observer, action, attempt, took, oneLine(rec.Error, 100))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d record(s), newest first (backend %s).\n", len(r.Records), r.Backend)
	if r.Next != "" {
		fmt.Fprintf(w, "More: --after %s\n", r.Next)
	}
}

func writeDocsText(w io.Writer, r searchReport) {
	if len(r.Docs) == 0 {
		fmt.Fprintf(w, "No documents match (backend %s).\n", r.Backend)
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tVERSION\tUPDATED\tDOCUMENT")
	for _, h := range r.Docs {
		updated := "-"
		if !h.UpdatedAt.IsZero() {
			updated = h.UpdatedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s %s\t%d/%d\t%s\t%s\n", h.Key.EntityType, h.Key.EntityID, h.Version.TxID, h.Version.Seq, updated, oneLine(string(h.Doc), 120))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d document(s) (backend %s).\n", len(r.Docs), r.Backend)
	if r.Next != "" {
		fmt.Fprintf(w, "More: --after %s\n", r.Next)
	}
}

// oneLine is s on one line, shortened to n bytes; "-" when empty.
func oneLine(s string, n int) string {
	if s == "" {
		return "-"
	}
	return observers.Shorten(strings.Join(strings.Fields(s), " "), n)
}
