package observertest

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
)

// maxMetricsBytes bounds a /metrics page.
const maxMetricsBytes = 32 << 20

// scrapeTimeout bounds one scrape by the test helpers.
const scrapeTimeout = 10 * time.Second

// ScrapeMetrics returns the Prometheus text a process serves at
// http://addr/metrics (see Process.HTTPAddr).
func ScrapeMetrics(ctx context.Context, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", errors.Wrap(err, "observertest: metrics request")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", errors.Wrapf(err, "observertest: scrape %s", addr)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		return "", errors.Wrapf(err, "observertest: scrape %s", addr)
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.Newf("observertest: scrape %s: %s", addr, resp.Status)
	}
	return string(b), nil
}

// ReadMetric reads one sample from the process at addr. series is the name
// with its labels exactly as exposed (labels sorted by name), e.g.
// `observer_cache_errors_total{backend="redis"}`. ok is false when the
// process does not expose the series, which is not the same as 0.
func ReadMetric(ctx context.Context, addr, series string) (value float64, ok bool, err error) {
	text, err := ScrapeMetrics(ctx, addr)
	if err != nil {
		return 0, false, err
	}
	return findSample(text, series)
}

func findSample(text, series string) (float64, bool, error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // value, then an optional timestamp
		if len(f) == 0 {
			return 0, false, errors.Newf("observertest: sample %q has no value", series)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false, errors.Wrapf(err, "observertest: sample %q", series)
		}
		return v, true, nil
	}
	return 0, false, nil
}

// Metrics is ScrapeMetrics for a test: it fails the test on error.
func Metrics(t testing.TB, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	text, err := ScrapeMetrics(ctx, addr)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return text
}

// LookupMetric is ReadMetric for a test: it fails the test when the scrape
// fails, and reports a missing series with ok false.
func LookupMetric(t testing.TB, addr, series string) (value float64, ok bool) {
	t.Helper()
	v, ok, err := findSample(Metrics(t, addr), series)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return v, ok
}

// Metric is ReadMetric for a test that expects the series: it fails the test
// when the process does not expose it (naming the series it does expose
// under the same metric name, to spot a renamed metric or label).
func Metric(t testing.TB, addr, series string) float64 {
	t.Helper()
	text := Metrics(t, addr)
	v, ok, err := findSample(text, series)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !ok {
		t.Fatalf("observertest: %s does not expose %s; under that name it has:\n%s", addr, series, similar(text, series))
	}
	return v
}

// similar lists (at most ten of) the samples of series's metric name.
func similar(text, series string) string {
	name, _, _ := strings.Cut(series, "{")
	var out []string
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			out = append(out, "  "+line)
		}
	}
	if len(out) == 0 {
		return "  (nothing)"
	}
	return strings.Join(out[:min(len(out), 10)], "\n")
}
