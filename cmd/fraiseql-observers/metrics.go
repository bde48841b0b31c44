package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/scrape"
)

// metricsDiscoverTimeout bounds the read of observer_listeners.
const metricsDiscoverTimeout = 10 * time.Second

type metricsOpts struct {
	DatabaseURL string
	Format      string
	// Metric keeps only this metric's series (its family name, or one
	// sample name such as observer_action_duration_seconds_count).
	Metric string
	// URLs are scraped instead of the instances in observer_listeners.
	URLs    []string
	Timeout time.Duration
	// ConfigPath, when set, is the configuration whose admin: block names
	// the admin server's credentials (token_env, basic_auth).
	ConfigPath string
}

func (o *metricsOpts) Validate() error {
	if err := validateFormat(o.Format); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return errors.WithHint(errors.New("--timeout must be positive"), "e.g. --timeout 5s")
	}
	if len(o.URLs) == 0 && o.DatabaseURL == "" {
		return errors.WithHint(errors.New("--database-url is empty"), "pass --database-url or set DATABASE_URL, or pass --url")
	}
	for i, u := range o.URLs {
		norm, err := metricsURL(u)
		if err != nil {
			return err
		}
		o.URLs[i] = norm
	}
	return nil
}

// metricsURL accepts http://host:port/metrics, http://host:port and
// host:port.
func metricsURL(raw string) (string, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", errors.WithHint(errors.Newf("--url %s is not an http(s) address", observers.RedactURL(s)),
			"pass the admin address of `run --http-addr`, e.g. --url http://127.0.0.1:8000/metrics")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u.String(), nil
}

func newMetricsCmd() *cobra.Command {
	opts := &metricsOpts{}
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Read the metrics of every running instance, counters summed",
		Long: `Scrape /metrics of every running instance (each ` + "`run`" + ` registers its
--http-addr in observer_listeners with its heartbeat; instances whose heartbeat
is stale are skipped and named on stderr), or of the endpoints given with
--url, and print one line per series, sorted: name{labels} value.

Across instances, counters are summed, and so are the buckets, sums and counts
of histograms and summaries. Gauges (and summary quantiles) are not: each
instance's comes with an instance="host:port" label. The gauges read from the
database (observer_job_queue_depth, observer_dlq_size,
observer_listener_lag_seconds, observer_listeners_healthy) are exported by the
listener leader only, and printed once without an instance label.

--metric NAME prints only that metric's series, and for a single series only
its value. An instance that cannot be read is reported on stderr and the others
are printed. When the admin servers ask for credentials (the admin: block),
pass the configuration with --config: its token_env (or basic_auth) variable
is read from the environment. Exit code 0 when at least one instance was read, 1 when none (or
the metric is not exposed), 2 on bad usage or an unreachable database.`,
		Example: `  fraiseql-observers metrics
  fraiseql-observers metrics --metric observer_events_processed_total
  fraiseql-observers metrics --metric observer_job_queue_depth --format json
  ADMIN_TOKEN=... fraiseql-observers metrics --config observers.yaml
  fraiseql-observers metrics --url http://10.0.0.5:8000/metrics --url http://10.0.0.6:8000/metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runMetrics(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	databaseURLFlag(cmd, &opts.DatabaseURL)
	formatFlag(cmd, &opts.Format)
	cmd.Flags().StringVar(&opts.Metric, "metric", "", "print only this metric's series (one series: only its value)")
	cmd.Flags().StringArrayVar(&opts.URLs, "url", nil, "scrape this /metrics endpoint instead of the registered instances (repeatable)")
	cmd.Flags().StringVarP(&opts.ConfigPath, "config", "c", "", "the configuration whose admin: block (token_env, basic_auth) gives the credentials of the admin servers")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", scrape.TimeoutDefault, "how long to wait for each instance")
	return cmd
}

// metricsReport is the JSON output of `metrics`.
type metricsReport struct {
	Instances []metricsInstance `json:"instances"`
	Skipped   []scrape.Skipped  `json:"skipped"`
	Series    []scrape.Series   `json:"series"`
}

type metricsInstance struct {
	scrape.Target
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func runMetrics(ctx context.Context, opts *metricsOpts, w, errw io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	targets, skipped, err := metricsTargets(ctx, opts)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(errw, "skipped: instance %s (%s): %s\n", s.ID, s.HTTPAddr, s.Reason)
	}
	client, err := metricsClient(ctx, opts.ConfigPath)
	if err != nil {
		return err
	}
	results := scrape.Scrape(ctx, client, targets, opts.Timeout)
	rep := metricsReport{Skipped: skipped, Instances: make([]metricsInstance, len(results))}
	ok, unauthorized := 0, false
	for i, r := range results {
		rep.Instances[i] = metricsInstance{Target: r.Target, OK: r.Err == nil}
		rep.Instances[i].URL = observers.RedactURL(r.URL)
		if r.Err != nil {
			rep.Instances[i].Error = r.Err.Error()
			fmt.Fprintf(errw, "unreachable: %v\n", r.Err)
			unauthorized = unauthorized || errors.Is(r.Err, scrape.ErrUnauthorized)
			continue
		}
		ok++
	}
	if ok == 0 && unauthorized {
		return withExitCode(exitFailure, errors.WithHint(errors.Newf("metrics: none of the %d instance(s) could be read (above)", len(targets)),
			"the admin servers ask for credentials: pass --config with the configuration whose admin: block names them, "+
				"and export its token_env (or basic_auth.password_env) variable"))
	}
	if ok == 0 {
		return withExitCode(exitFailure, noInstanceError(len(targets), len(skipped), len(opts.URLs) > 0))
	}
	rep.Series = scrape.Combine(results)
	if opts.Metric != "" {
		if rep.Series, err = selectMetric(rep.Series, opts.Metric); err != nil {
			return withExitCode(exitFailure, err)
		}
	}
	if opts.Format == "json" {
		return writeJSON(w, rep)
	}
	return writeMetricsText(w, rep.Series, opts.Metric != "")
}

// metricsTargets are the --url endpoints, or the instances registered in
// the database.
func metricsTargets(ctx context.Context, opts *metricsOpts) ([]scrape.Target, []scrape.Skipped, error) {
	if len(opts.URLs) > 0 {
		targets := make([]scrape.Target, len(opts.URLs))
		for i, raw := range opts.URLs {
			u, _ := url.Parse(raw) // checked by Validate
			targets[i] = scrape.Target{Instance: u.Host, URL: raw}
		}
		return targets, []scrape.Skipped{}, nil
	}
	pool, err := openDB(ctx, opts.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	defer pool.Close()
	dctx, cancel := context.WithTimeout(ctx, metricsDiscoverTimeout)
	defer cancel()
	targets, skipped, err := scrape.Discover(dctx, pool, scrape.StaleAfterDefault)
	return targets, skipped, withExitCode(exitFailure, err)
}

func noInstanceError(tried, skipped int, fromURLs bool) error {
	var err error
	switch {
	case tried > 0:
		err = errors.Newf("metrics: none of the %d instance(s) could be read (above)", tried)
	case skipped > 0:
		err = errors.Newf("metrics: no running instance: the %d registered in observer_listeners have stale heartbeats (above)", skipped)
	default:
		err = errors.New("metrics: no running instance is registered in observer_listeners")
	}
	if fromURLs {
		return errors.WithHint(err, "check that each --url is the admin address of a running `fraiseql-observers run` (its --http-addr)")
	}
	return errors.WithHint(err, "is `fraiseql-observers run` running with --http-addr (it registers the address with its heartbeat)? "+
		"Or pass its address: --url http://HOST:PORT/metrics")
}

// selectMetric keeps the series of one metric family, or of one sample name.
func selectMetric(series []scrape.Series, name string) ([]scrape.Series, error) {
	var out []scrape.Series
	names := map[string]bool{}
	for _, s := range series {
		names[s.Metric] = true
		if s.Metric == name || s.Name == name {
			out = append(out, s)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	err := errors.Newf("metrics: no instance exposes %s", name)
	var similar []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if strings.Contains(n, name) || strings.Contains(name, n) || sharedWords(n, name) >= 2 {
			similar = append(similar, n)
		}
	}
	if len(similar) > 0 {
		return nil, errors.WithHint(err, "did you mean "+strings.Join(similar[:min(len(similar), 5)], ", ")+"?")
	}
	return nil, errors.WithHint(err, "`fraiseql-observers metrics` lists every series")
}

// sharedWords counts the _-separated words a and b have in common, besides
// the observer_ prefix and the _total suffix.
func sharedWords(a, b string) int {
	n := 0
	for _, wa := range strings.Split(a, "_") {
		if wa == "observer" || wa == "total" || wa == "" {
			continue
		}
		if slices.Contains(strings.Split(b, "_"), wa) {
			n++
		}
	}
	return n
}

// writeMetricsText writes one line per series, or the value alone when
// --metric selected a single series.
func writeMetricsText(w io.Writer, series []scrape.Series, selected bool) error {
	var b strings.Builder
	if selected && len(series) == 1 {
		b.WriteString(scrape.FormatValue(series[0].Value) + "\n")
	} else {
		for _, s := range series {
			b.WriteString(s.Line() + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return errors.Wrap(err, "write output")
}
