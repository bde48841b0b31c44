package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const (
	adminToken    = "tok-3f9a1c77e2"
	adminPassword = "pw-b81d0e55"
)

// uiInstance is a running observer with River UI, a change it delivered
// (its batch job completed) and a delivery the receiver refused (its
// follow-up job cancelled).
type uiInstance struct {
	ob        *observertest.Observer
	pool      *pgxpool.Pool
	base      string // http://host:port
	batch     int64  // the batch job's id
	cancelled int64  // the cancelled follow-up job's id
}

// startUI runs the observer with the given admin: block. Observer
// order_created's receiver answers 200, order_audit's 400 (permanent: the
// delivery is cancelled).
func startUI(t *testing.T, admin string) *uiInstance {
	t.Helper()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
			if strings.HasSuffix(d.Path, "/audit") {
				return observertest.Response{Status: http.StatusBadRequest, Body: []byte("audit endpoint refuses")}
			}
			return observertest.Response{Status: http.StatusOK}
		},
	})
	cfg := fmt.Sprintf(`listener: {id: ui, poll_interval: 200ms}
allow_private_targets: true
%s
observers:
  order_created:
    entity: Order
    events: [INSERT]
    actions: [{type: webhook, url: %q}]
  order_audit:
    entity: Order
    events: [INSERT]
    actions: [{type: webhook, url: %q}]
    retry: {max_attempts: 1}
`, admin, recv.URL()+"/orders", recv.URL()+"/audit")
	ob := observertest.Run(t, observertest.Options{Config: cfg, DatabaseURL: url,
		Env: map[string]string{"ADMIN_TOKEN": adminToken, "ADMIN_PASSWORD": adminPassword}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ob.WaitLeader(ctx))
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "ord-ui-1", Kind: "INSERT", Data: `{"total": 12}`})
	in := &uiInstance{ob: ob, pool: pool, base: "http://" + ob.HTTPAddr()}
	require.Eventually(t, func() bool {
		err := pool.QueryRow(ctx, `SELECT (args->>'batch')::bigint, id FROM river_job
			WHERE kind = 'fraiseql_observer_action' AND state = 'cancelled'`).Scan(&in.batch, &in.cancelled)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "the refused delivery was not cancelled\n%s", ob.Log())
	return in
}

func bearer(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminToken) }

// call sends one request to the instance and returns the status, headers
// and body.
func (in *uiInstance) call(t *testing.T, method, path, body string, auth func(*http.Request)) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.base+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

type uiJob struct {
	ID    int64  `json:"id"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	Args  string `json:"args"`
}

func (in *uiInstance) jobs(t *testing.T, state string) []uiJob {
	t.Helper()
	code, _, body := in.call(t, http.MethodGet, "/riverui/api/jobs?state="+state, "", bearer)
	require.Equal(t, http.StatusOK, code, body)
	var page struct{ Data []uiJob }
	require.NoError(t, json.Unmarshal([]byte(body), &page), body)
	return page.Data
}

// River UI is served at /riverui/ from the binary's embedded assets, its
// API reads the real River tables, and it is read-only by default: the
// cancelled delivery cannot be retried from it.
func TestRiverUIServesJobsReadOnly(t *testing.T) {
	t.Parallel()
	in := startUI(t, "admin: {token_env: ADMIN_TOKEN}")

	code, hdr, body := in.call(t, http.MethodGet, "/riverui/", "", bearer)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, hdr.Get("Content-Type"), "text/html")
	require.Contains(t, body, "River")
	require.Contains(t, body, `/riverui/assets/`, "the index must load its embedded assets under the prefix")

	cancelled := in.jobs(t, "cancelled")
	require.Len(t, cancelled, 1)
	require.Equal(t, in.cancelled, cancelled[0].ID)
	require.Equal(t, "fraiseql_observer_action", cancelled[0].Kind)
	var follow struct {
		Observer string
		Entity   string
		EventID  string `json:"event_id"`
		Batch    int64
	}
	require.NoError(t, json.Unmarshal([]byte(cancelled[0].Args), &follow))
	require.Equal(t, "order_audit", follow.Observer)
	require.Equal(t, "Order", follow.Entity)
	require.NotEmpty(t, follow.EventID)
	require.Equal(t, in.batch, follow.Batch, "the follow-up names its batch job")

	code, _, body = in.call(t, http.MethodGet, fmt.Sprintf("/riverui/api/jobs/%d", in.batch), "", bearer)
	require.Equal(t, http.StatusOK, code, body)
	var batch uiJob
	require.NoError(t, json.Unmarshal([]byte(body), &batch))
	require.Equal(t, "fraiseql_observer_batch", batch.Kind)
	require.Equal(t, "completed", batch.State)
	var args struct {
		ActionType string `json:"action_type"`
		Deliveries []struct {
			Observer string
			Seqs     []int64
		}
	}
	require.NoError(t, json.Unmarshal([]byte(batch.Args), &args), batch.Args)
	require.Equal(t, "webhook", args.ActionType)
	require.Len(t, args.Deliveries, 2, batch.Args)
	require.ElementsMatch(t, []string{"order_audit", "order_created"},
		[]string{args.Deliveries[0].Observer, args.Deliveries[1].Observer})
	require.Len(t, args.Deliveries[0].Seqs, 1)

	// Read-only: every write answers 403 with the reason, and nothing changes.
	for _, w := range []struct{ method, path, body string }{
		{http.MethodPost, "/riverui/api/jobs/retry", fmt.Sprintf(`{"ids":["%d"]}`, in.cancelled)},
		{http.MethodPost, "/riverui/api/jobs/delete", fmt.Sprintf(`{"ids":["%d"]}`, in.cancelled)},
		{http.MethodPost, "/riverui/api/jobs/cancel", fmt.Sprintf(`{"ids":["%d"]}`, in.batch)},
		{http.MethodPut, "/riverui/api/queues/fraiseql_observers_webhook/pause", ""},
		{http.MethodPatch, "/riverui/api/queues/fraiseql_observers_webhook", `{}`},
	} {
		code, _, body := in.call(t, w.method, w.path, w.body, bearer)
		require.Equal(t, http.StatusForbidden, code, "%s %s: %s", w.method, w.path, body)
		require.Contains(t, body, "admin.riverui_write: true")
	}
	require.Len(t, in.jobs(t, "cancelled"), 1, "the refused retry left the job cancelled")
}

// With admin.riverui_write: true River UI's writes go through: the
// cancelled delivery is retried from it (and delivered to the same
// refusing receiver, so it ends cancelled again, attempt 2).
func TestRiverUIWriteRetriesAJob(t *testing.T) {
	t.Parallel()
	in := startUI(t, "admin: {basic_auth: {username: ops, password_env: ADMIN_PASSWORD}, riverui_write: true}")
	basic := func(r *http.Request) { r.SetBasicAuth("ops", adminPassword) }
	code, _, body := in.call(t, http.MethodPost, "/riverui/api/jobs/retry", fmt.Sprintf(`{"ids":["%d"]}`, in.cancelled), basic)
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool {
		var attempt int
		var state string
		err := in.pool.QueryRow(context.Background(), `SELECT attempt, state FROM river_job WHERE id = $1`, in.cancelled).Scan(&attempt, &state)
		return err == nil && attempt == 2 && state == "cancelled"
	}, 30*time.Second, 50*time.Millisecond)
}

// Everything but /healthz asks for the credentials: a bearer token or
// basic auth; a wrong or missing one gets 401 with WWW-Authenticate for
// each accepted scheme. The credentials never reach the log.
func TestAdminServerAuth(t *testing.T) {
	t.Parallel()
	in := startUI(t, "admin: {token_env: ADMIN_TOKEN, basic_auth: {username: ops, password_env: ADMIN_PASSWORD}}")
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	token := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}

	code, _, body := in.call(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	for _, path := range []string{"/metrics", "/readyz", "/riverui/", "/riverui/api/jobs?state=cancelled"} {
		for name, auth := range map[string]func(*http.Request){
			"none": nil, "wrong token": token("nope"), "wrong password": basic("ops", "nope"),
			"wrong user": basic("root", adminPassword), "token as password": basic("ops", adminToken),
		} {
			code, hdr, body := in.call(t, http.MethodGet, path, "", auth)
			require.Equal(t, http.StatusUnauthorized, code, "%s with %s: %s", path, name, body)
			require.ElementsMatch(t, []string{`Bearer realm="fraiseql-observers admin"`,
				`Basic realm="fraiseql-observers admin", charset="UTF-8"`}, hdr.Values("WWW-Authenticate"))
			require.NotContains(t, body, adminToken)
		}
		for name, auth := range map[string]func(*http.Request){"token": token(adminToken), "basic": basic("ops", adminPassword)} {
			code, _, body := in.call(t, http.MethodGet, path, "", auth)
			require.Equal(t, http.StatusOK, code, "%s with %s: %s", path, name, body)
		}
	}
	log := in.ob.Log()
	require.NotContains(t, log, adminToken)
	require.NotContains(t, log, adminPassword)
}

// Without an admin: block the server asks for nothing (observertest and
// `metrics` read /metrics as before) and River UI is served.
func TestAdminServerOpenByDefault(t *testing.T) {
	t.Parallel()
	in := startUI(t, "")
	code, _, body := in.call(t, http.MethodGet, "/riverui/api/jobs?state=cancelled", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, observertest.Metrics(t, in.ob.HTTPAddr()), "observer_events_processed_total")
}
