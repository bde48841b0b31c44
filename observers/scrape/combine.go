package scrape

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// InstanceLabel is the label Combine adds to per-instance series: the
// address scraped.
const InstanceLabel = "instance"

// DatabaseWide are the gauges read from the database, which only the
// listener leader exports: summing them would count the database once per
// instance that reports them (two for a moment around a change of
// leader), and an instance label would only name the leader. Combine
// reports each series once, with the highest reading.
var DatabaseWide = map[string]bool{
	"observer_job_queue_depth":      true,
	"observer_dlq_size":             true,
	"observer_listener_lag_seconds": true,
	"observer_listeners_healthy":    true,
	"observer_audit_outbox_size":    true,
}

// How a Series was combined across instances.
const (
	CombinedSum         = "sum"          // counters; histogram and summary buckets, counts and sums
	CombinedPerInstance = "per_instance" // gauges, untyped, summary quantiles: one series per instance
	CombinedDatabase    = "database"     // DatabaseWide gauges: one reading of the database
)

// Series is one combined sample.
type Series struct {
	// Name is the sample's name: the metric's, or with _bucket, _sum or
	// _count for histograms and summaries.
	Name string `json:"name"`
	// Metric is the metric family's name.
	Metric string `json:"metric"`
	// Type is counter, gauge, histogram, summary or untyped.
	Type   string            `json:"type"`
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
	// Combined says how: CombinedSum, CombinedPerInstance or
	// CombinedDatabase.
	Combined string `json:"combined"`
	// Instances counts the instances that reported the series.
	Instances int `json:"instances"`
}

// Line is the series as `name{labels} value`, labels sorted by name.
func (s Series) Line() string { return s.Key() + " " + FormatValue(s.Value) }

// Key is `name{labels}`, labels sorted by name (le last, as Prometheus
// writes buckets).
func (s Series) Key() string {
	if len(s.Labels) == 0 {
		return s.Name
	}
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('{')
	for i, k := range labelNames(s.Labels) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(s.Labels[k]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// FormatValue writes v as Prometheus does, but integers in full (a
// counter at 1234567 reads 1234567, not 1.234567e+06).
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func labelNames(l map[string]string) []string {
	names := make([]string, 0, len(l))
	for k := range l {
		if k != "le" && k != "quantile" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range []string{"quantile", "le"} {
		if _, ok := l[k]; ok {
			names = append(names, k)
		}
	}
	return names
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// Combine merges the pages of the results read without error into one
// sorted list of series.
func Combine(results []Result) []Series {
	acc := map[string]*Series{}
	add := func(so seriesOf) {
		s, how := so.Series, so.how
		s.Combined = how
		if how == CombinedPerInstance {
			s.Labels[InstanceLabel] = so.instance
		}
		k := s.Key()
		prev := acc[k]
		switch {
		case prev == nil:
			s.Instances = 1
			acc[k] = &s
		case how == CombinedDatabase:
			prev.Value = max(prev.Value, s.Value)
			prev.Instances++
		default: // a sum; a per-instance series is unique by its instance label
			prev.Value += s.Value
			prev.Instances++
		}
	}
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		for _, mf := range r.Families {
			for _, s := range samples(mf, r.Instance) {
				add(s)
			}
		}
	}
	out := make([]Series, 0, len(acc))
	for _, s := range acc {
		out = append(out, *s)
	}
	slices.SortFunc(out, compareSeries)
	return out
}

// compareSeries orders by name, then labels (le and quantile by value).
func compareSeries(a, b Series) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	strip := func(s Series) Series {
		l := map[string]string{}
		for k, v := range s.Labels {
			if k != "le" && k != "quantile" {
				l[k] = v
			}
		}
		s.Labels = l
		return s
	}
	if c := cmp.Compare(strip(a).Key(), strip(b).Key()); c != 0 {
		return c
	}
	for _, k := range []string{"quantile", "le"} {
		if c := cmp.Compare(parseBound(a.Labels[k]), parseBound(b.Labels[k])); c != 0 {
			return c
		}
	}
	return 0
}

func parseBound(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.Inf(-1)
	}
	return f
}
