package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers"
)

type validateConfigOpts struct {
	File     string
	Format   string
	Detailed bool
	// DatabaseURL, when set, lets a file with observers_table check the
	// table's rows too; "" skips them (with a note).
	DatabaseURL string
	// Getenv looks up the *_env variables; nil means the process environment.
	Getenv func(string) (string, bool)
}

func (o *validateConfigOpts) Validate() error {
	if o.File == "" {
		return errors.WithHint(errors.New("no config file given"), "usage: fraiseql-observers validate-config FILE")
	}
	return validateFormat(o.Format)
}

func newValidateConfigCmd() *cobra.Command {
	opts := &validateConfigOpts{}
	cmd := &cobra.Command{
		Use:   "validate-config FILE",
		Short: "Check an observers YAML file and report every problem with its position",
		Long: `Parse and validate an observers configuration file without connecting to
the database. Every problem is reported as file:line:col with a hint.
Unset *_env variables (url_env, signing_secret_env, webhook_url_env,
smtp.username_env, smtp.password_env, elasticsearch.api_key_env, ...) are warnings here (run refuses
to start without them). Exit status 0 when the file is valid, 1 when not.
When the file sets observers_table, its rows are checked too if
--database-url (or DATABASE_URL) is given; otherwise they are not.
--detailed prints each observer with its defaults filled in; secrets are
never printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runValidateConfig(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	formatFlag(cmd, &opts.Format)
	cmd.Flags().StringVar(&opts.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"),
		"Postgres URL to check the observers_table rows too (env DATABASE_URL); without it they are not checked")
	cmd.Flags().Lookup("database-url").DefValue = observers.RedactURL(os.Getenv("DATABASE_URL"))
	cmd.Flags().BoolVar(&opts.Detailed, "detailed", false, "print every observer resolved with defaults (secrets redacted)")
	return cmd
}

// validateReport is the --format json output of validate-config.
type validateReport struct {
	File                string           `json:"file"`
	Valid               bool             `json:"valid"`
	Hash                string           `json:"hash,omitempty"`
	Summary             string           `json:"summary,omitempty"`
	Note                string           `json:"note,omitempty"` // observers_table rows not checked
	Listener            *listenerView    `json:"listener,omitempty"`
	Workers             *workersView     `json:"workers,omitempty"`
	AllowPrivateTargets bool             `json:"allow_private_targets"`
	SMTP                *smtpView        `json:"smtp,omitempty"`
	Retention           *retentionView   `json:"retention,omitempty"`
	Admin               *adminView       `json:"admin,omitempty"`
	Elasticsearch       *esView          `json:"elasticsearch,omitempty"`
	Search              *searchView      `json:"search,omitempty"`
	Audit               *auditView       `json:"audit,omitempty"`
	Observers           []observerView   `json:"observers"`
	Diagnostics         []diagnosticView `json:"diagnostics"`
}

type diagnosticView struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
}

type listenerView struct {
	ID           string `json:"id"`
	Table        string `json:"table"`
	BatchSize    int    `json:"batch_size"`
	PollInterval string `json:"poll_interval"`
}

type workersView struct {
	MaxWorkers        int    `json:"max_workers"`
	FetchCooldown     string `json:"fetch_cooldown"`
	FetchPollInterval string `json:"fetch_poll_interval"`
}

// retentionView shows the retention: block: each table's period, or off.
type retentionView struct {
	ChangeLog     string `json:"change_log"`
	CompletedJobs string `json:"completed_jobs"`
	DeadLetters   string `json:"dead_letters"`
	SkippedEvents string `json:"skipped_events"`
}

func viewRetention(c observers.RetentionConfig) *retentionView {
	f := observers.FormatRetention
	return &retentionView{ChangeLog: f(c.ChangeLog), CompletedJobs: f(c.CompletedJobs), DeadLetters: f(c.DeadLetters),
		SkippedEvents: f(c.SkippedEvents)}
}

// adminView shows the admin: block; it holds variable names, never the
// credentials themselves.
type adminView struct {
	Auth                 string `json:"auth"` // none, token, basic, token+basic
	TokenEnv             string `json:"token_env,omitempty"`
	BasicAuthUsername    string `json:"basic_auth_username,omitempty"`
	BasicAuthPasswordEnv string `json:"basic_auth_password_env,omitempty"`
	RiverUI              bool   `json:"riverui"`
	RiverUIWrite         bool   `json:"riverui_write"`
}

func viewAdmin(c observers.AdminConfig) *adminView {
	v := &adminView{Auth: "none", TokenEnv: c.TokenEnv, RiverUI: c.RiverUI, RiverUIWrite: c.RiverUIWrite}
	var kinds []string
	if c.TokenEnv != "" {
		kinds = append(kinds, "token")
	}
	if c.BasicAuth != nil {
		kinds = append(kinds, "basic")
		v.BasicAuthUsername, v.BasicAuthPasswordEnv = c.BasicAuth.Username, c.BasicAuth.PasswordEnv
	}
	if len(kinds) > 0 {
		v.Auth = strings.Join(kinds, "+")
	}
	return v
}

// smtpView shows the smtp: block; it holds variable names, never the
// credentials themselves.
type smtpView struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`
	From        string `json:"from"`
	UsernameEnv string `json:"username_env,omitempty"`
	PasswordEnv string `json:"password_env,omitempty"`
	TLS         string `json:"tls"`
	Timeout     string `json:"timeout"`
}

func viewSMTP(c *observers.SMTPConfig) *smtpView {
	if c == nil {
		return nil
	}
	return &smtpView{Host: c.Host, Port: c.Port, From: c.From, UsernameEnv: c.UsernameEnv, PasswordEnv: c.PasswordEnv,
		TLS: c.TLS, Timeout: observers.ShortDuration(c.Timeout)}
}

type observerView struct {
	Name      string       `json:"name"`
	Entity    string       `json:"entity"`
	Events    []string     `json:"events"`
	Condition string       `json:"condition,omitempty"`
	Actions   []actionView `json:"actions"`
	Retry     retryView    `json:"retry"`
}

// actionView is one action in the JSON report: its type, then its
// non-empty settings (observers.Action.Settings), in order.
type actionView []observers.Setting

// UnmarshalJSON reads an object back (its keys in no particular order).
func (v *actionView) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*v = nil
	for _, k := range sortedKeys(m) {
		*v = append(*v, observers.Setting{Key: k, Value: m[k]})
	}
	return nil
}

// MarshalJSON writes the view as one object.
func (v actionView) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, s := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := observers.MarshalJSON(s.Key)
		if err != nil {
			return nil, err
		}
		val, err := observers.MarshalJSON(s.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type retryView struct {
	MaxAttempts     int    `json:"max_attempts"`
	InitialDelay    string `json:"initial_delay"`
	MaxDelay        string `json:"max_delay"`
	BackoffStrategy string `json:"backoff_strategy"`
}

func runValidateConfig(ctx context.Context, opts *validateConfigOpts, w io.Writer) error {
	data, err := observers.ReadConfigFile(opts.File, 0) // a file over the limit is read no further
	if err != nil {
		return withExitCode(exitUsage, errors.WithHint(errors.Wrap(err, "read config"),
			"pass the path of an observers YAML file, e.g. examples/observers.yaml"))
	}
	lo := observers.LoadOptions{Getenv: opts.Getenv}
	if opts.DatabaseURL != "" {
		pool, err := daemon.Connect(ctx, opts.DatabaseURL)
		if err != nil {
			return withExitCode(exitFailure, err)
		}
		defer pool.Close()
		lo.Rows = func(ctx context.Context, table string) ([]observers.TableObserver, error) {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return observers.ReadTableObservers(qctx, pool, table)
		}
	}
	cfg, diags, err := observers.ParseConfig(ctx, opts.File, data, lo)
	if err != nil && !diags.HasErrors() {
		return withExitCode(exitFailure, err) // the table could not be read
	}
	note := ""
	if cfg != nil && cfg.TableSkipped() {
		note = fmt.Sprintf("note: observers in observers_table %s were not checked; pass --database-url to check them", cfg.ObserversTable)
	}
	valid := !diags.HasErrors()

	if opts.Format == "json" {
		report := validateReport{File: opts.File, Valid: valid, Note: note, Observers: []observerView{}, Diagnostics: []diagnosticView{}}
		for _, d := range diags {
			report.Diagnostics = append(report.Diagnostics, diagnosticView{
				File: d.File, Line: d.Line, Column: d.Column, Severity: d.Severity.String(), Message: d.Message, Hint: d.Hint,
			})
		}
		if cfg != nil {
			report.Hash = cfg.Hash
			report.Summary = configSummary(cfg)
			report.Listener, report.Workers = viewListener(cfg.Listener), viewWorkers(cfg.Workers)
			report.AllowPrivateTargets = cfg.AllowPrivateTargets
			report.SMTP = viewSMTP(cfg.SMTP)
			report.Retention = viewRetention(cfg.Retention)
			report.Admin = viewAdmin(cfg.Admin)
			report.Elasticsearch, report.Search, report.Audit = viewES(cfg.Elasticsearch), &searchView{Backend: cfg.Search.Backend}, viewAudit(cfg.Audit)
			for _, o := range cfg.Observers {
				report.Observers = append(report.Observers, viewObserver(o))
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(report); err != nil {
			return errors.Wrap(err, "write report")
		}
	} else {
		if valid {
			fmt.Fprintf(w, "%s: OK — %s\n", opts.File, configSummary(cfg))
		}
		for _, d := range diags {
			fmt.Fprintln(w, d.String())
		}
		if note != "" {
			fmt.Fprintln(w, note)
		}
		if !valid {
			errs := len(diags.Errors())
			fmt.Fprintf(w, "%s: invalid — %s, %s\n", opts.File,
				plural(errs, "error", "errors"), plural(len(diags)-errs, "warning", "warnings"))
		}
		if valid && opts.Detailed {
			writeDetailed(w, cfg)
		}
	}
	if !valid {
		return withExitCode(exitFailure, errSilent)
	}
	return nil
}

// configSummary is "3 observers, 2 entities (Order, User), 4 actions (4 webhook)".
func configSummary(cfg *observers.Config) string {
	entities := map[string]bool{}
	types := map[string]int{}
	actions := 0
	for _, o := range cfg.Observers {
		entities[o.Entity] = true
		for _, a := range o.Actions {
			types[a.Type()]++
			actions++
		}
	}
	names := sortedKeys(entities)
	var typeParts []string
	for _, t := range sortedKeys(types) {
		typeParts = append(typeParts, fmt.Sprintf("%d %s", types[t], t))
	}
	s := plural(len(cfg.Observers), "observer", "observers") + ", " + plural(len(names), "entity", "entities")
	if len(names) > 0 {
		s += " (" + strings.Join(names, ", ") + ")"
	}
	s += ", " + plural(actions, "action", "actions")
	if len(typeParts) > 0 {
		s += " (" + strings.Join(typeParts, ", ") + ")"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func viewListener(l observers.ListenerConfig) *listenerView {
	return &listenerView{ID: l.ID, Table: l.Table, BatchSize: l.BatchSize, PollInterval: observers.ShortDuration(l.PollInterval)}
}

func viewWorkers(wc observers.WorkersConfig) *workersView {
	return &workersView{MaxWorkers: wc.MaxWorkers, FetchCooldown: observers.ShortDuration(wc.FetchCooldown),
		FetchPollInterval: observers.ShortDuration(wc.FetchPollInterval)}
}

// viewObserver renders an observer for output, with every secret redacted.
func viewObserver(o *observers.Observer) observerView {
	v := observerView{
		Name:   o.Name,
		Entity: o.Entity,
		Retry: retryView{
			MaxAttempts: o.Retry.MaxAttempts, InitialDelay: observers.ShortDuration(o.Retry.InitialDelay),
			MaxDelay: observers.ShortDuration(o.Retry.MaxDelay), BackoffStrategy: o.Retry.BackoffStrategy,
		},
	}
	for _, k := range o.Events {
		v.Events = append(v.Events, string(k))
	}
	if o.Condition != nil {
		v.Condition = o.Condition.Source()
	}
	for _, a := range o.Actions {
		v.Actions = append(v.Actions, viewAction(a))
	}
	return v
}

// viewAction is the action's type and its non-empty settings.
func viewAction(a observers.Action) actionView {
	v := actionView{{Key: "type", Value: a.Type()}}
	for _, s := range a.Settings() {
		if !emptySetting(s.Value) {
			v = append(v, s)
		}
	}
	return v
}

func emptySetting(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []string:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func writeDetailed(w io.Writer, cfg *observers.Config) {
	l, wk := viewListener(cfg.Listener), viewWorkers(cfg.Workers)
	fmt.Fprintf(w, "\nlistener: id=%s table=%s batch_size=%d poll_interval=%s\n", l.ID, l.Table, l.BatchSize, l.PollInterval)
	fmt.Fprintf(w, "workers:  max_workers=%d fetch_cooldown=%s fetch_poll_interval=%s\n",
		wk.MaxWorkers, wk.FetchCooldown, wk.FetchPollInterval)
	fmt.Fprintf(w, "allow_private_targets: %t\n", cfg.AllowPrivateTargets)
	rv := viewRetention(cfg.Retention)
	fmt.Fprintf(w, "retention: change_log=%s completed_jobs=%s dead_letters=%s skipped_events=%s\n",
		rv.ChangeLog, rv.CompletedJobs, rv.DeadLetters, rv.SkippedEvents)
	av := viewAdmin(cfg.Admin)
	fmt.Fprintf(w, "admin:    auth=%s", av.Auth)
	if av.TokenEnv != "" {
		fmt.Fprintf(w, " token_env=%s", av.TokenEnv)
	}
	if av.BasicAuthUsername != "" {
		fmt.Fprintf(w, " basic_auth.username=%s basic_auth.password_env=%s", av.BasicAuthUsername, av.BasicAuthPasswordEnv)
	}
	fmt.Fprintf(w, " riverui=%t riverui_write=%t\n", av.RiverUI, av.RiverUIWrite)
	if sv := viewSMTP(cfg.SMTP); sv != nil {
		fmt.Fprintf(w, "smtp:     host=%s port=%d from=%s tls=%s timeout=%s", sv.Host, sv.Port, sv.From, sv.TLS, sv.Timeout)
		if sv.UsernameEnv != "" {
			fmt.Fprintf(w, " username_env=%s password_env=%s", sv.UsernameEnv, sv.PasswordEnv)
		}
		fmt.Fprintln(w)
	}
	writeSearchDetailed(w, cfg) // validate_config_search.go
	fmt.Fprintf(w, "version:  %s\n", cfg.Hash)
	for _, o := range cfg.Observers {
		v := viewObserver(o)
		fmt.Fprintf(w, "\nobserver %s\n", v.Name)
		fmt.Fprintf(w, "  entity:     %s\n", v.Entity)
		fmt.Fprintf(w, "  events:     %s\n", strings.Join(v.Events, ", "))
		if v.Condition != "" {
			fmt.Fprintf(w, "  condition:  %s\n", v.Condition)
		}
		fmt.Fprintf(w, "  retry:      max_attempts=%d initial_delay=%s max_delay=%s backoff=%s\n",
			v.Retry.MaxAttempts, v.Retry.InitialDelay, v.Retry.MaxDelay, v.Retry.BackoffStrategy)
		for i, a := range o.Actions {
			fmt.Fprintf(w, "  actions[%d]: %s\n", i, a.Type())
			writeSettings(w, a.Settings())
		}
	}
}

// writeSettings prints an action's non-empty settings, one per line:
// a list joined by commas, a map[string]string one entry a line under the
// singular key ("header: X-Source: fraiseql"), any other map as JSON, a
// multi-line text indented.
func writeSettings(w io.Writer, settings []observers.Setting) {
	field := func(name, value string) {
		value = strings.ReplaceAll(strings.TrimRight(value, "\n"), "\n", "\n"+strings.Repeat(" ", 24))
		fmt.Fprintf(w, "    %-19s %s\n", name+":", value)
	}
	for _, s := range settings {
		if emptySetting(s.Value) {
			continue
		}
		switch v := s.Value.(type) {
		case string:
			field(s.Key, v)
		case []string:
			field(s.Key, strings.Join(v, ", "))
		case map[string]string:
			for _, k := range sortedKeys(v) {
				field(strings.TrimSuffix(s.Key, "s"), k+": "+v[k])
			}
		default:
			b, _ := json.Marshal(v)
			field(s.Key, string(b))
		}
	}
}
