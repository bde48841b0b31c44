package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// e2eFor replaces the alerts' for: in the test copy of the rules, so that
// HighActionFailureRate goes pending, then firing, within seconds.
const e2eFor = "3s"

// failureRateSumBy is HighActionFailureRate's expression summed over the
// failure class: it matches whether or not the failed counter carries a
// label the executed counter lacks.
const failureRateSumBy = `sum by (action_type, observer) (rate(observer_actions_failed_total[5m]))` +
	` / sum by (action_type, observer) (rate(observer_actions_executed_total[5m])) > 0.05`

// A real Prometheus (Debian's package) scrapes an observer whose receiver
// answers 500, with the shipped rules loaded; HighActionFailureRate goes to
// firing in Prometheus's own API.
func TestPrometheusFiresHighActionFailureRate(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed: scripts/ensure-services.sh installs it (apt-get install prometheus)")
	}
	pool, url := sqltest.NewDB(t)
	down := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			return observertest.Response{Status: http.StatusInternalServerError}
		},
	})
	ob := observertest.Run(t, observertest.Options{DatabaseURL: url, Config: "listener:\n  id: e2e\n  poll_interval: 200ms\n" +
		"allow_private_targets: true\nobservers:\n  orders:\n    entity: Order\n    events: [INSERT]\n" +
		"    actions:\n      - type: webhook\n        url: " + down.URL() + "\n" +
		"    retry: {max_attempts: 50, initial_delay: 100ms, max_delay: 200ms}\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, ob.WaitLeader(ctx))
	prom := startPrometheus(t, bin, ob.HTTPAddr(), testRules(t))

	// Prometheus scrapes the observer before any delivery fails, and the
	// alert is not there.
	require.Eventually(t, func() bool {
		n, err := prom.query(`up{job="fraiseql-observers"} == 1`)
		return err == nil && n == 1
	}, 60*time.Second, 100*time.Millisecond, "prometheus scrapes the observer")
	scraped := time.Now()
	require.Eventually(t, func() bool {
		ok, err := prom.evaluatedSince(scraped)
		return err == nil && ok
	}, 60*time.Second, 100*time.Millisecond, "prometheus evaluates the rules")
	alerts, raw, err := prom.alerts()
	require.NoError(t, err)
	require.False(t, slices.ContainsFunc(alerts, func(a alert) bool { return a.Labels["alertname"] == "HighActionFailureRate" }),
		"no failure yet, no HighActionFailureRate: %s", raw)

	for i := range 3 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	firing := func(alerts []alert) bool {
		return slices.ContainsFunc(alerts, func(a alert) bool {
			return a.Labels["alertname"] == "HighActionFailureRate" && a.State == "firing" &&
				a.Labels["observer"] == "orders" && a.Labels["action_type"] == "webhook"
		})
	}
	fired := assert.Eventually(t, func() bool {
		alerts, _, err := prom.alerts()
		return err == nil && firing(alerts)
	}, 90*time.Second, 250*time.Millisecond, "HighActionFailureRate fires")
	alerts, raw, err = prom.alerts()
	require.True(t, fired && err == nil && firing(alerts), "/api/v1/alerts: %s (error: %v)\nprometheus log:\n%s", raw, err, prom.log)
	require.NotEmpty(t, down.All(), "the receiver was called")
	t.Logf("/api/v1/alerts: %s", raw)

	// Every query of the dashboard runs on this Prometheus; those about
	// what the test did return series.
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			n, err := prom.query(dashboardVars.Replace(e))
			require.NoError(t, err, "dashboard panel %q: %s", title, e)
			if strings.HasPrefix(e, "sum(rate(observer_events_processed_total") || strings.HasPrefix(e, "sum by (action_type) (rate(observer_actions_") {
				require.Positive(t, n, "dashboard panel %q shows the test's deliveries: %s", title, e)
			}
		}
	}
}

// dashboardVars replaces the Grafana variables of the dashboard's queries
// with values for an instant query on a Prometheus that scrapes every
// second.
var dashboardVars = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "1m")

// testRules writes a copy of the shipped rules with every for: shortened
// to e2eFor, and returns its path. While the failed counter carries a
// label the executed counter lacks (metrics.golden says), the guide's
// expression matches no series and the copy uses failureRateSumBy.
func testRules(t *testing.T) string {
	t.Helper()
	rf := readRules(t)
	sumBy := !sameLabels(t, "observer_actions_failed_total", "observer_actions_executed_total")
	if sumBy {
		t.Logf("observer_actions_failed_total and observer_actions_executed_total have different labels: "+
			"the test copy of HighActionFailureRate uses %s", failureRateSumBy)
	}
	found := false
	for gi := range rf.Groups {
		for ri := range rf.Groups[gi].Rules {
			r := &rf.Groups[gi].Rules[ri]
			if r.For != "" {
				r.For = e2eFor
			}
			if r.Alert == "HighActionFailureRate" {
				found = true
				if sumBy {
					r.Expr = failureRateSumBy
				}
			}
		}
	}
	require.True(t, found, "%s has HighActionFailureRate", rulesFile)
	b, err := yaml.Marshal(rf)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "alerts.yml")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

var variableLabels = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// sameLabels tells whether metrics.golden gives the two metrics the same
// label names.
func sameLabels(t *testing.T, a, b string) bool {
	t.Helper()
	data, err := os.ReadFile(metricsGolden)
	require.NoError(t, err)
	labels := map[string][]string{}
	for _, m := range variableLabels.FindAllStringSubmatch(string(data), -1) {
		l := strings.Split(m[2], ",")
		slices.Sort(l)
		labels[m[1]] = l
	}
	require.Contains(t, labels, a)
	require.Contains(t, labels, b)
	return slices.Equal(labels[a], labels[b])
}

// prometheus is a Prometheus server the test started.
type prometheus struct {
	url string
	log *syncBuffer
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// startPrometheus runs bin on a free loopback port with a fresh data
// directory, scraping target every second and evaluating rules every
// second, and waits until it is ready. Cleanup stops it.
func startPrometheus(t *testing.T, bin, target, rules string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"+
		"rule_files:\n  - %s\nscrape_configs:\n  - job_name: fraiseql-observers\n    static_configs:\n      - targets: ['%s']\n", rules, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	addr := freeAddr(t)
	log := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log)
		}
	})
	p := &prometheus{url: "http://" + addr, log: log}
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "prometheus gets ready; its log:\n%s", log)
	return p
}

// get decodes the JSON answer of GET path (Prometheus's HTTP API: status
// "success", the payload in data) into data. It returns errors instead of
// failing the test: it runs in require.Eventually's conditions.
func (p *prometheus) get(path string, data any) (string, error) {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var out struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		return string(body), fmt.Errorf("GET %s: %d %s (%v)", path, resp.StatusCode, body, err)
	}
	return string(body), json.Unmarshal(out.Data, data)
}

// alerts returns the alerts pending or firing (/api/v1/alerts) and the raw
// answer.
func (p *prometheus) alerts() ([]alert, string, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	raw, err := p.get("/api/v1/alerts", &data)
	return data.Alerts, raw, err
}

// query runs an instant query and returns how many series it returned.
func (p *prometheus) query(expr string) (int, error) {
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	_, err := p.get("/api/v1/query?query="+neturl.QueryEscape(expr), &data)
	return len(data.Result), err
}

// evaluatedSince tells whether every rule group was evaluated after t0
// (/api/v1/rules).
func (p *prometheus) evaluatedSince(t0 time.Time) (bool, error) {
	var data struct {
		Groups []struct {
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	if _, err := p.get("/api/v1/rules", &data); err != nil {
		return false, err
	}
	if len(data.Groups) == 0 {
		return false, errors.New("prometheus has loaded no rule group")
	}
	for _, g := range data.Groups {
		if !g.LastEvaluation.After(t0) {
			return false, nil
		}
	}
	return true, nil
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
