package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

// searchReceiver answers /ok with 200, /bad with 400 (a permanent failure:
// dead at once) and /flaky with 503 the first time each change arrives,
// then 200.
func searchReceiver(t *testing.T) *observertest.Receiver {
	var mu sync.Mutex
	seen := map[string]bool{}
	return observertest.NewReceiver(t, observertest.ReceiverOptions{Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
		switch {
		case strings.HasSuffix(d.Path, "/bad"):
			return observertest.Response{Status: 400}
		case strings.HasSuffix(d.Path, "/flaky"):
			mu.Lock()
			defer mu.Unlock()
			if !seen[d.ID] {
				seen[d.ID] = true
				return observertest.Response{Status: 503}
			}
		}
		return observertest.Response{Status: 200}
	}})
}

// searchObservers are three webhook observers of Order changes (ok, bad,
// flaky) and a search action on every entity.
func searchObservers(url string) map[string]string {
	hook := func(path string) string {
		return fmt.Sprintf("entity: Order\nevents: [INSERT, UPDATE]\nactions:\n  - type: webhook\n    url: %s/%s\nretry: {max_attempts: 3, initial_delay: 50ms, max_delay: 100ms}\n", url, path)
	}
	return map[string]string{
		"order_ok": hook("ok"), "order_bad": hook("bad"), "order_flaky": hook("flaky"),
		"index_all": "entity: '*'\nevents: [INSERT, UPDATE, DELETE]\nactions:\n  - type: search\n    index: shared\n",
	}
}

// searchCLI runs `fraiseql-observers search` (or another command with
// args) and returns its exit code and output.
func searchCLI(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, string(out))
	return 0, string(out)
}

type searchJSON struct {
	Backend string                `json:"backend"`
	Records []storage.AuditRecord `json:"records"`
	Docs    []storage.DocHit      `json:"documents"`
	Next    string                `json:"next"`
}

// auditRun writes the suite's changes through a daemon with the audit trail
// in extra's backend and returns, once every record is there, the `search`
// answers to queries (name → JSON).
func auditRun(t *testing.T, url, extra string, env []string) map[string]searchJSON {
	t.Helper()
	pool := sqltest.NewPool(t, url)
	recv := searchReceiver(t)
	cfg := webhookConfig(extra, searchObservers(recv.URL()))
	p := observertest.StartProcess(t, runOptions(url, cfg, env...))
	for i := 1; i <= 3; i++ {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("A-100", i), Kind: "INSERT",
			Data: fmt.Sprintf(`{"customer": {"name": "Ada Lovelace"}, "n": %d}`, i)})
	}
	observertest.InsertChange(t, pool, observertest.Change{Entity: "User", ID: "1", Kind: "INSERT", Data: `{"name": "Grace Hopper"}`})
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{"customer": {"name": "Linus"}}`})
	// ok 4× and flaky 4× (after one 503 each) answered 2xx; bad 4× (400: dead).
	recv.WaitN(t, 8, 60*time.Second)

	cfgEnv := append(slices.Clone(env), "DATABASE_URL="+url)
	search := func(args ...string) searchJSON {
		code, out := searchCLI(t, cfgEnv, append([]string{"search", "--config", p.ConfigPath(), "--format", "json", "--limit", "500"}, args...)...)
		require.Equal(t, 0, code, out)
		var r searchJSON
		require.NoError(t, json.Unmarshal([]byte(out), &r), out)
		return r
	}
	// 5 events received; 4 Order events × (ok succeeded, bad dead, flaky
	// failed then succeeded); 5 search documents indexed.
	const want = 5 + 4*4 + 5
	require.Eventually(t, func() bool { return len(search().Records) >= want }, 30*time.Second, 100*time.Millisecond,
		"the audit trail should hold %d records", want)
	queries := map[string][]string{
		"all":                    nil,
		"orders of the last 24h": {"--entity-type", "Order", "--since", "24h"},
		"failed webhooks":        {"--action-type", "webhook", "--status", "failed"},
		"dead":                   {"--status", "dead"},
		"free text in data":      {"lovelace"},
		"free text in errors":    {"503", "service"},
		"one observer":           {"--observer", "order_ok"},
		"one entity":             {"--entity-id", "A-1002"},
		"documents":              {"--index", "shared"},
		"documents text":         {"--index", "shared", "hopper"},
	}
	out := map[string]searchJSON{}
	for name, args := range queries {
		out[name] = search(args...)
	}
	return out
}

// The audit trail records every change and every delivery outcome, and
// `search` answers the guide's queries (Order events of the last 24 h,
// failed webhook actions) and free text from it; dlq show and debug-event
// --history show a change's records.
func TestAuditTrailAndSearchCommandPostgres(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	got := auditRun(t, url, "audit:\n  enabled: true\n  flush_interval: 100ms\n", nil)

	require.Len(t, got["all"].Records, 26)
	require.Equal(t, "postgres", got["all"].Backend)
	statuses := map[storage.AuditStatus]int{}
	for _, r := range got["all"].Records {
		statuses[r.Status]++
	}
	require.Equal(t, map[storage.AuditStatus]int{storage.AuditReceived: 5, storage.AuditSucceeded: 4 + 4 + 5, storage.AuditDead: 4, storage.AuditFailed: 4}, statuses)

	for _, r := range got["orders of the last 24h"].Records {
		require.Equal(t, "Order", r.EntityType)
	}
	require.Len(t, got["orders of the last 24h"].Records, 4+4*4+4)
	failed := got["failed webhooks"].Records
	require.Len(t, failed, 4)
	for _, r := range failed {
		require.Equal(t, "order_flaky", r.ObserverID)
		require.Equal(t, 1, r.Attempt)
		require.Contains(t, r.Error, "503")
	}
	require.Len(t, got["dead"].Records, 4)
	for _, r := range got["dead"].Records {
		require.Equal(t, "order_bad", r.ObserverID)
		require.Contains(t, r.Error, "400")
	}
	require.Len(t, got["free text in data"].Records, 3, "the three received records whose data names Ada Lovelace")
	require.Len(t, got["free text in errors"].Records, 4)
	require.Len(t, got["one observer"].Records, 4)
	for _, r := range got["one entity"].Records {
		require.Equal(t, "A-1002", r.EntityID)
	}
	// Order 1 and User 1 are two documents of one index.
	var keys []string
	for _, h := range got["documents"].Docs {
		keys = append(keys, h.Key.EntityType+" "+h.Key.EntityID)
	}
	require.Equal(t, []string{"Order 1", "Order A-1001", "Order A-1002", "Order A-1003", "User 1"}, keys)
	require.Len(t, got["documents text"].Docs, 1)

	// The text output and the commands that read the trail.
	env := []string{"DATABASE_URL=" + url}
	code, out := searchCLI(t, env, "search", "--action-type", "webhook", "--status", "failed")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "order_flaky")
	require.Contains(t, out, "4 record(s), newest first (backend postgres)")
	code, out = searchCLI(t, env, "search", "--status", "nonsense")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "is not an audit status")

	code, out = searchCLI(t, env, "dlq", "list", "--format", "json")
	require.Equal(t, 0, code, out)
	var dead struct {
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &dead), out)
	require.NotEmpty(t, dead.Deliveries)
	code, out = searchCLI(t, env, "dlq", "show", dead.Deliveries[0].ID)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "Audit trail (backend postgres, oldest first):")
	require.Regexp(t, `dead\s+order_bad webhook\[0\] attempt 1`, out)

	code, out = searchCLI(t, env, "debug-event", "--entity-type", "Order", "--history", "5")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "Audit trail")
	require.Regexp(t, `received\s+listener`, out)
}

// esConfig is the elasticsearch:, search: and audit: blocks on srv, with the
// API key from $ES_API_KEY.
func esConfig(srv *estest.Server, searchBackend string) string {
	return fmt.Sprintf("elasticsearch:\n  url: %s\n  api_key_env: ES_API_KEY\nsearch:\n  backend: %s\n"+
		"audit:\n  enabled: true\n  backend: elasticsearch\n  flush_interval: 100ms\n", srv.URL, searchBackend)
}

const esAPIKey = "ZXNfYXBpX2tleV9pbl90ZXN0cw=="

// The same changes through the same observers give the same audit trail and
// documents on Elasticsearch as on Postgres: every query of `search`
// answers with the same records (their times and durations aside).
func TestSearchGivesTheSameAnswersOnBothBackends(t *testing.T) {
	t.Parallel()
	_, pgURL := sqltest.NewDB(t)
	_, esURL := sqltest.NewDB(t)
	srv := estest.New(t, estest.WithAPIKey(esAPIKey))
	var onPG, onES map[string]searchJSON
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		onPG = auditRun(t, pgURL, "audit:\n  enabled: true\n  flush_interval: 100ms\n", nil)
	}()
	go func() {
		defer wg.Done()
		onES = auditRun(t, esURL, esConfig(srv, "elasticsearch"), []string{"ES_API_KEY=" + esAPIKey})
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	require.Equal(t, "elasticsearch", onES["all"].Backend)
	require.Equal(t, "postgres", onPG["all"].Backend)
	same := func(r storage.AuditRecord) storage.AuditRecord {
		r.Timestamp, r.DurationMS, r.EventID = time.Time{}, 0, "" // each run's changes have their own uuids
		if r.Error != "" {                                        // the receivers' ports differ
			r.Error = fmt.Sprint(len(storage.Words(r.Error)), " words")
		}
		return r
	}
	for name, pg := range onPG {
		es := onES[name]
		if strings.HasPrefix(name, "documents") {
			require.Equal(t, docSummary(pg.Docs), docSummary(es.Docs), name)
			continue
		}
		var a, b []storage.AuditRecord
		for _, r := range pg.Records {
			a = append(a, same(r))
		}
		for _, r := range es.Records {
			b = append(b, same(r))
		}
		sortRecords(a)
		sortRecords(b)
		require.NotEmpty(t, a, name)
		require.Equal(t, len(a), len(b), name)
		for i := range a {
			if len(a[i].Data) > 0 {
				require.JSONEq(t, string(a[i].Data), string(b[i].Data), name)
			}
			a[i].Data, b[i].Data = nil, nil
		}
		require.Equal(t, a, b, name)
	}
	// The ES backend wrote through the index template it installed.
	_, ok := srv.Template("fraiseql_events")
	require.True(t, ok, "run installs the index template")
	_, ok = srv.Policy("fraiseql_events_policy")
	require.True(t, ok, "run installs the ILM policy")
}

func sortRecords(rs []storage.AuditRecord) {
	slices.SortFunc(rs, func(a, b storage.AuditRecord) int { return strings.Compare(a.ID, b.ID) })
}

func docSummary(hits []storage.DocHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, fmt.Sprintf("%s %s %s", h.Key.Index, h.Key.EntityType, h.Key.EntityID))
	}
	return out
}

// Elasticsearch down for a while: deliveries go on unaffected, the records
// wait in the Postgres outbox, and once it answers again every record is
// indexed and the outbox drains.
func TestAuditTrailSurvivesElasticsearchDown(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	srv := estest.New(t, estest.WithAPIKey(esAPIKey))
	srv.SetMode(estest.Refuse)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	env := []string{"ES_API_KEY=" + esAPIKey}
	p := observertest.StartProcess(t, runOptions(url, webhookConfig(esConfig(srv, "postgres"), orderObserver(recv.URL())), env...))
	const n = 40
	for i := range n {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("o", i), Kind: "INSERT", Data: `{"total": 5}`})
	}
	recv.WaitN(t, n, 60*time.Second) // delivered while Elasticsearch refuses every connection
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_audit_outbox`).Scan(&waiting))
		return waiting == 2*n
	}, 30*time.Second, 100*time.Millisecond, "every record waits in the outbox")
	require.Positive(t, observertest.Metric(t, p.HTTPAddr(), `observer_search_index_failures_total{backend="elasticsearch",reason="unavailable"}`))

	srv.SetMode(estest.Up)
	cliEnv := append(slices.Clone(env), "DATABASE_URL="+url)
	require.Eventually(t, func() bool {
		code, out := searchCLI(t, cliEnv, "search", "--config", p.ConfigPath(), "--format", "json", "--limit", "500")
		var r searchJSON
		return code == 0 && json.Unmarshal([]byte(out), &r) == nil && len(r.Records) == 2*n
	}, 60*time.Second, 250*time.Millisecond, "every record is indexed once Elasticsearch is back")
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_audit_outbox`).Scan(&waiting))
		return waiting == 0
	}, 30*time.Second, 100*time.Millisecond, "the outbox drains")
	code, out := searchCLI(t, cliEnv, "search", "--config", p.ConfigPath(), "--status", "succeeded")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, fmt.Sprintf("%d record(s), newest first (backend elasticsearch)", n))
	require.NotContains(t, out+p.Log(), esAPIKey, "the API key is never printed")
}
