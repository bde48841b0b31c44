package scrape

import (
	"math"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// samples flattens one instance's metric family into series, each marked
// with how it combines across instances.
func samples(mf *dto.MetricFamily, instance string) []seriesOf {
	name := mf.GetName()
	typ := strings.ToLower(mf.GetType().String())
	var out []seriesOf
	emit := func(sampleName string, labels map[string]string, v float64, how string) {
		out = append(out, seriesOf{Series: Series{Name: sampleName, Metric: name, Type: typ, Labels: labels, Value: v}, how: how, instance: instance})
	}
	for _, m := range mf.GetMetric() {
		base := func(extra ...string) map[string]string {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(extra); i += 2 {
				l[extra[i]] = extra[i+1]
			}
			return l
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			emit(name, base(), m.GetCounter().GetValue(), CombinedSum)
		case dto.MetricType_GAUGE:
			how := CombinedPerInstance
			if DatabaseWide[name] {
				how = CombinedDatabase
			}
			emit(name, base(), m.GetGauge().GetValue(), how)
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
				emit(name+"_bucket", base("le", FormatValue(b.GetUpperBound())), float64(b.GetCumulativeCount()), CombinedSum)
			}
			if !inf { // implied by the count, as the text format writes it
				emit(name+"_bucket", base("le", "+Inf"), float64(h.GetSampleCount()), CombinedSum)
			}
			emit(name+"_sum", base(), h.GetSampleSum(), CombinedSum)
			emit(name+"_count", base(), float64(h.GetSampleCount()), CombinedSum)
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				emit(name, base("quantile", FormatValue(q.GetQuantile())), q.GetValue(), CombinedPerInstance)
			}
			emit(name+"_sum", base(), s.GetSampleSum(), CombinedSum)
			emit(name+"_count", base(), float64(s.GetSampleCount()), CombinedSum)
		default: // untyped: nothing says whether a sum means anything
			emit(name, base(), m.GetUntyped().GetValue(), CombinedPerInstance)
		}
	}
	return out
}

// seriesOf is a Series before combining: the instance it came from and how
// it combines.
type seriesOf struct {
	Series
	how      string
	instance string
}
