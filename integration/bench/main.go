// Command bench measures fraiseql-observers end to end on the local Postgres,
// side by side with River's own ceiling on the same database and worker
// count. Each scenario prints one JSON object; a table follows at the end.
//
//	go run ./integration/bench                 # every scenario, full size
//	go run ./integration/bench -quick          # every scenario, small (CI)
//	go run ./integration/bench -scenarios throughput,latency -n 20000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

type options struct {
	bin               string
	admin             string
	scenarios         []string
	n                 int
	rate              int
	duration          time.Duration
	workers           int
	fetchCooldown     time.Duration
	batch             int
	perJob            int // concurrency.deliveries_per_job; 0: the config default
	concurrencyN      int
	idle              time.Duration
	largeRows         int           // large: changes in the transaction
	largeBytes        int           // large: JSON bytes per change
	replayN           int           // replay: changes replayed
	dlqN              int           // dlq: dead deliveries
	retentionRows     int           // retention: old change-log rows to delete
	retentionDuration time.Duration // retention: how long to offer the latency load
	quick             bool
	profileDir        string
	audit             bool // audit: {backend: postgres} in the pipeline scenarios' configuration
}

// figure is one measured number.
type figure struct {
	Name  string
	Value float64
	Unit  string
}

type result struct {
	Scenario string
	Params   map[string]any
	Figures  []figure
	Err      error
}

func (r result) MarshalJSON() ([]byte, error) {
	m := map[string]any{"scenario": r.Scenario, "params": r.Params}
	figs := map[string]any{}
	for _, f := range r.Figures {
		figs[f.Name] = f.Value
	}
	m["figures"] = figs
	if r.Err != nil {
		m["error"] = r.Err.Error()
	}
	return json.Marshal(m)
}

func (r *result) add(name string, v float64, unit string) {
	r.Figures = append(r.Figures, figure{name, v, unit})
}

func (r *result) get(name string) float64 {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value
		}
	}
	return 0
}

// fanout-single runs last: its 1.5 GB of WAL (at the default n) disturbs
// the disk for a while after it ends, which shows in the tail of whatever
// latency scenario follows.
var allScenarios = []string{"ceiling", "throughput", "throughput-audit", "throughput-single", "fanout",
	"latency", "latency-single", "concurrency", "idle", "cache", "large", "replay", "dlq", "retention", "fanout-single"}

func main() {
	o := options{}
	var scen string
	flag.StringVar(&o.bin, "bin", "", "fraiseql-observers binary (default: build it)")
	flag.StringVar(&o.admin, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin database URL; each scenario creates its own database")
	flag.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated: "+strings.Join(allScenarios, ","))
	flag.IntVar(&o.n, "n", 50000, "events for ceiling, throughput and fan-out")
	flag.IntVar(&o.rate, "rate", 1000, "latency: offered events per second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "latency: how long to offer load")
	flag.IntVar(&o.workers, "workers", 0, "River workers (default: the config default)")
	flag.DurationVar(&o.fetchCooldown, "fetch-cooldown", 0, "River fetch cooldown (default: the config default)")
	flag.IntVar(&o.batch, "batch", 0, "listener batch size (default: the config default)")
	flag.IntVar(&o.perJob, "deliveries-per-job", 0, "concurrency.deliveries_per_job (default: the config default); the *-single scenarios use 1")
	flag.IntVar(&o.concurrencyN, "concurrency-events", 100, "concurrency: events (3 actions each, receiver sleeps 100ms)")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle: how long to watch an idle run")
	flag.StringVar(&o.profileDir, "profile-dir", "", "write a 5s CPU profile of the run process per pipeline scenario into this directory")
	flag.IntVar(&o.largeRows, "large-rows", 30, "large: changes of -large-bytes each in one transaction")
	flag.IntVar(&o.largeBytes, "large-bytes", 10<<20, "large: JSON bytes per change")
	flag.IntVar(&o.replayN, "replay-n", 100000, "replay: changes the listener passed, then replayed")
	flag.IntVar(&o.dlqN, "dlq-n", 100_000, "dlq: dead deliveries that dlq retry-all puts back")
	flag.IntVar(&o.retentionRows, "retention-rows", 1_000_000, "retention: old change-log rows retention deletes under the latency load")
	flag.DurationVar(&o.retentionDuration, "retention-duration", 90*time.Second, "retention: how long to offer the latency load (the deletion must end within it)")
	flag.BoolVar(&o.audit, "audit", false, "turn the audit trail on (audit: {backend: postgres}) in the scenarios built by configYAML")
	flag.BoolVar(&o.quick, "quick", false, "small sizes: every scenario in well under a minute")
	flag.Parse()
	if o.quick {
		o.n, o.rate, o.duration, o.concurrencyN, o.idle = 2000, 200, 3*time.Second, 10, 3*time.Second
		o.largeRows, o.largeBytes = 3, 1<<20
		o.replayN = 3000
		o.dlqN = 2000
		o.retentionRows, o.retentionDuration = 20_000, 3*time.Second
	}
	o.scenarios = strings.Split(scen, ",")
	for _, s := range o.scenarios {
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(os.Stderr, "unknown scenario %q; choose from %s\n", s, strings.Join(allScenarios, ","))
			os.Exit(2)
		}
	}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "fraiseql-bench-bin-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(dir)
		if o.bin, err = observertest.BuildBinary(dir); err != nil {
			fatal(err)
		}
	}

	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "bench: %d CPUs, %s, scenarios %s, n=%d\n", runtime.NumCPU(), runtime.Version(), strings.Join(o.scenarios, ","), o.n)
	var results []result
	var ceiling, throughput float64
	failed := false
	for _, s := range o.scenarios {
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", s)
		r := run(ctx, o, s)
		if s == "ceiling" {
			ceiling = r.get("jobs_per_s")
		}
		if strings.HasPrefix(s, "throughput") && ceiling > 0 {
			r.add("ratio_to_ceiling", r.get("events_per_s")/ceiling, "x")
		}
		if s == "throughput" {
			throughput = r.get("events_per_s")
		}
		if s == "throughput-audit" && throughput > 0 {
			r.add("ratio_to_throughput", r.get("events_per_s")/throughput, "x")
		}
		if strings.HasPrefix(s, "fanout") && ceiling > 0 {
			r.add("ratio_to_ceiling", r.get("deliveries_per_s")/ceiling, "x")
		}
		out, _ := json.Marshal(r)
		fmt.Println(string(out))
		if r.Err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", s, r.Err)
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nscenario\tfigure\tvalue\tunit")
	for _, r := range results {
		for _, f := range r.Figures {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Scenario, f.Name, format(f.Value), f.Unit)
		}
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\tERROR\t%v\t\n", r.Scenario, r.Err)
		}
	}
	_ = tw.Flush()
	if failed {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, s string) result {
	// A *-single scenario is its namesake with one River job per delivery
	// (deliveries_per_job: 1), the simple design the batches are measured
	// against.
	if base, ok := strings.CutSuffix(s, "-single"); ok {
		o.perJob = 1
		r := run(ctx, o, base)
		r.Scenario = s
		return r
	}
	switch s {
	case "ceiling":
		return ceilingScenario(ctx, o)
	case "throughput":
		return pipelineScenario(ctx, o, "throughput", 1, 1)
	case "throughput-audit":
		// throughput with the audit trail on (Postgres backend): one record
		// per event and one per delivery, written asynchronously.
		o.audit = true
		return pipelineScenario(ctx, o, "throughput-audit", 1, 1)
	case "fanout":
		return pipelineScenario(ctx, o, "fanout", 3, 2)
	case "latency":
		return latencyScenario(ctx, o)
	case "concurrency":
		return concurrencyScenario(ctx, o)
	case "idle":
		return idleScenario(ctx, o)
	case "cache":
		return cacheScenario(ctx, o)
	case "large":
		return largeScenario(ctx, o)
	case "replay":
		return replayScenario(ctx, o)
	case "dlq":
		return dlqScenario(ctx, o)
	case "retention":
		return retentionScenario(ctx, o)
	}
	return result{Scenario: s, Err: fmt.Errorf("unknown scenario")}
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e12:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
