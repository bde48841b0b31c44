package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

// With both backends on Elasticsearch (the test server of
// storage/elasticsearch), the daemon authenticates with the API key of
// api_key_env; while the cluster is down at start the audit records wait
// in the outbox, and once it answers the index template is installed
// before the first record is written, the outbox drains, and the search
// action's document is there.
func TestElasticsearchBackends(t *testing.T) {
	t.Parallel()
	es := estest.New(t, estest.WithAPIKey("a2V5OnNlY3JldA=="))
	es.SetMode(estest.Unavailable)
	pool, url := sqltest.NewDB(t)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`listener: {poll_interval: 100ms}
elasticsearch: {url: '%s', api_key_env: ES_KEY}
search: {backend: elasticsearch}
audit: {backend: elasticsearch, flush_interval: 50ms}
observers:
  orders:
    entity: Order
    events: [INSERT]
    retry: {max_attempts: 20, initial_delay: 100ms, max_delay: 200ms}
    actions: [{type: log}, {type: search, index: orders}]
`, es.URL)), 0o600))
	ctx := context.Background()
	env := map[string]string{"ES_KEY": "a2V5OnNlY3JldA=="}
	d, err := daemon.New(ctx, daemon.Options{ConfigPath: cfg, DatabaseURL: url, DrainTimeout: 5 * time.Second,
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	require.NoError(t, err)
	require.NoError(t, d.Start(ctx))
	t.Cleanup(d.Stop)

	var seq int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', '42', 'INSERT', '{"total": 10}') RETURNING pk_entity_change_log`).Scan(&seq))
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(DISTINCT record->>'status') FROM observer_audit_outbox
			WHERE record->>'status' IN ('received', 'succeeded', 'failed')`).Scan(&n))
		return n == 3 // received, the log action's success, a failed attempt of the search action
	}, 30*time.Second, 20*time.Millisecond, "records wait in the outbox while Elasticsearch is down")
	_, ok := es.Template(elasticsearch.AuditIndexPrefixDefault)
	require.False(t, ok)

	es.SetMode(estest.Up)
	client, err := elasticsearch.New(elasticsearch.Config{URL: es.URL, APIKey: env["ES_KEY"]})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		page, err := client.Audit().Search(ctx, storage.AuditQuery{EventSeq: seq})
		if err != nil {
			return false
		}
		var received, logged, searched bool
		for _, r := range page.Records {
			received = received || r.Status == storage.AuditReceived
			logged = logged || (r.Status == storage.AuditSucceeded && r.ActionType == "log")
			searched = searched || (r.Status == storage.AuditSucceeded && r.ActionType == "search")
		}
		return received && logged && searched
	}, 60*time.Second, 50*time.Millisecond, "the trail reaches Elasticsearch once it answers")
	_, ok = es.Template(elasticsearch.AuditIndexPrefixDefault)
	require.True(t, ok, "the index template was installed before the records were written")
	doc, err := client.Search().Get(ctx, storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "42"})
	require.NoError(t, err)
	require.Contains(t, string(doc), `"total"`)
	page, err := client.Audit().Search(ctx, storage.AuditQuery{EventSeq: seq, Status: storage.AuditFailed})
	require.NoError(t, err)
	require.NotEmpty(t, page.Records, "the search action's attempts while Elasticsearch was down are in the trail")
}
