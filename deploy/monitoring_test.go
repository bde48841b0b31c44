package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// Files this folder ships, and the list of metrics the binary registers.
const (
	rulesFile     = "prometheus/alerts.yml"
	dashboardFile = "grafana/fraiseql-observers.json"
	metricsGolden = "../daemon/testdata/metrics.golden"
)

// histograms are the registered histograms: their series are NAME_bucket,
// NAME_sum and NAME_count.
var histograms = []string{
	"observer_action_duration_seconds",
	"observer_batch_duration_seconds",
	"observer_event_delivery_latency_seconds",
}

// ruleFile is the part of a Prometheus rules file the tests read and write.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(b, &rf), rulesFile)
	require.NotEmpty(t, rf.Groups, rulesFile)
	return rf
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registered returns the metric names the binary registers (from
// metrics.golden), each with the series names it
// exposes (a histogram's _bucket, _sum and _count).
func registered(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(metricsGolden)
	require.NoError(t, err)
	names := map[string]bool{}
	for _, m := range fqName.FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	require.Contains(t, names, "observer_actions_failed_total", "%s lists the registered metrics", metricsGolden)
	for _, h := range histograms {
		require.Contains(t, names, h, "a histogram listed here is registered")
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			names[h+s] = true
		}
	}
	return names
}

// grafanaVars are the Grafana variables the dashboard's queries use, with
// a value PromQL accepts in their place.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m")

// dashboardExprs returns every query of the dashboard, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Inputs        []struct {
			Name string `json:"name"`
		} `json:"__inputs"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d), dashboardFile)
	require.GreaterOrEqual(t, d.SchemaVersion, 39)
	require.Len(t, d.Inputs, 1)
	require.Equal(t, "DS_PROMETHEUS", d.Inputs[0].Name, "the dashboard asks for its Prometheus on import")
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// metricNames parses expr with the PromQL parser and returns the metric
// names its selectors name.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	require.NoError(t, err, "%s: %s", where, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			require.NotEmpty(t, vs.Name, "%s: every selector names its metric: %s", where, expr)
			names = append(names, vs.Name)
		}
		return nil
	})
	require.NotEmpty(t, names, "%s: names no metric: %s", where, expr)
	return names
}

// Every expression of the rules and the dashboard parses and names only
// metrics the binary registers (or a rule of the file records).
func TestMonitoringNamesOnlyRegisteredMetrics(t *testing.T) {
	t.Parallel()
	known := registered(t)
	rf := readRules(t)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	check := func(where, expr string) {
		for _, n := range metricNames(t, where, expr) {
			require.True(t, known[n], "%s names %s, which the binary does not register: %s", where, n, expr)
		}
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			check(rulesFile+": "+r.Alert+r.Record, r.Expr)
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
				for _, a := range []string{"summary", "description", "runbook"} {
					require.NotEmpty(t, r.Annotations[a], "%s: alert %s has a %s", rulesFile, r.Alert, a)
				}
				require.Contains(t, r.Annotations["runbook"], "fraiseql-observers ", "%s: the runbook of %s names a command", rulesFile, r.Alert)
			}
		}
	}
	require.Subset(t, alerts, []string{"HighActionFailureRate", "ObserverListenerLagHigh", "ObserverHorizonHeldByOpenTransaction",
		"ObserverDLQGrowing", "ObserverNoLeader", "ObserverNoHealthyListener", "ObserverCircuitBreakerOpen"})

	panels := dashboardExprs(t)
	require.GreaterOrEqual(t, len(panels), 10)
	var used []string
	for title, exprs := range panels {
		for _, e := range exprs {
			check(dashboardFile+": panel "+title, e)
			used = append(used, metricNames(t, title, e)...)
		}
	}
	for _, m := range []string{"observer_events_processed_total", "observer_actions_failed_total", "observer_event_delivery_latency_seconds_bucket",
		"observer_job_queue_depth", "observer_dlq_size", "observer_listener_lag_seconds", "observer_listener_is_leader",
		"observer_circuit_breaker_state", "observer_dedup_skips_total", "observer_cache_hits_total"} {
		require.True(t, slices.Contains(used, m), "the dashboard shows %s", m)
	}
}

// The check fails on a name the binary does not register: a misspelt
// metric in a rule would not go unnoticed.
func TestMonitoringCheckRejectsUnknownMetric(t *testing.T) {
	t.Parallel()
	known := registered(t)
	names := metricNames(t, "test", `sum(rate(observer_actions_failed_totl[5m])) / sum(rate(observer_actions_executed_total[5m]))`)
	require.Equal(t, []string{"observer_actions_failed_totl", "observer_actions_executed_total"}, names)
	require.False(t, known[names[0]])
	require.True(t, known[names[1]])
}
