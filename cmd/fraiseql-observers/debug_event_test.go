package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
	"github.com/fraiseql/fraiseql-observers/observertest"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

var updateDebugGolden = flag.Bool("update-debug-event", false, "rewrite testdata/debug_event_*.golden")

func runDebugCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(append([]string{"debug-event"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// debugJSON runs debug-event --format json and decodes its report.
func debugJSON(t *testing.T, url string, args ...string) debugReport {
	t.Helper()
	code, out, errOut := runDebugCLI(t, append([]string{"--database-url", url, "--format", "json"}, args...)...)
	require.Equal(t, exitOK, code, errOut)
	require.Empty(t, errOut)
	var r debugReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&r), out)
	return r
}

// debugConfig has one observer per way of not matching an Order insert:
// order_created matches; order_updated watches another kind, big_orders's
// condition is false, strict_orders's fails (status is a string),
// invoice_created watches another entity.
func debugConfig(hook string) string {
	obs := func(name, entity, kind, cond string) string {
		s := fmt.Sprintf("  %s:\n    entity: %s\n    events: [%s]\n", name, entity, kind)
		if cond != "" {
			s += fmt.Sprintf("    condition: %q\n", cond)
		}
		return s + fmt.Sprintf("    actions:\n      - {type: webhook, url: %q}\n    retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 100ms}\n", hook)
	}
	return "listener: {id: dbg, poll_interval: 100ms}\nallow_private_targets: true\ndedup: {window: 10m}\ncache: {ttl: 10m}\nobservers:\n" +
		obs("order_created", "Order", "INSERT", "") + obs("order_updated", "Order", "UPDATE", "") +
		obs("big_orders", "Order", "INSERT", "total > 1000") + obs("strict_orders", "Order", "INSERT", "status > 3") +
		obs("invoice_created", "Invoice", "INSERT", "")
}

// debugPipeline runs the daemon against a receiver that refuses order
// "bad" with 400 and writes: ok (delivered), bad (dead), dup (the same
// content as ok: a duplicate), skip (of unknown kind), then stops the
// daemon and writes late (not read).
type debugPipeline struct {
	url                      string
	pool                     *pgxpool.Pool
	ok, bad, dup, skip, late int64
	okID                     string
	hookUser, hookPassword   string
	configPath, newConfPath  string
}

func newDebugPipeline(t *testing.T) *debugPipeline {
	t.Helper()
	pool, url := sqltest.NewDB(t)
	p := &debugPipeline{url: url, pool: pool, hookUser: "ops", hookPassword: "hunter2-debug"}
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
		if bytes.Contains(d.Body, []byte(`"entity_id":"bad"`)) {
			return observertest.Response{Status: 400, Body: []byte("unknown customer")}
		}
		return observertest.Response{}
	}})
	hook := strings.Replace(recv.URL(), "http://", "http://"+p.hookUser+":"+p.hookPassword+"@", 1) + "/orders?token=s3cret-debug"
	cfg := debugConfig(hook)
	p.configPath = filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(p.configPath, []byte(cfg), 0o600))
	p.newConfPath = filepath.Join(t.TempDir(), "observers.new.yaml")
	require.NoError(t, os.WriteFile(p.newConfPath, []byte(strings.Replace(cfg, "total > 1000", "total > 100", 1)), 0o600))

	obs := observertest.Run(t, observertest.Options{DatabaseURL: url, ConfigPath: p.configPath})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, obs.WaitLeader(ctx))
	order := func(id string) observertest.Change {
		return observertest.Change{Entity: "Order", ID: id, Kind: "INSERT", Data: `{"status": "new", "total": 250}`}
	}
	p.ok = observertest.InsertChange(t, pool, order("ok"))
	p.bad = observertest.InsertChange(t, pool, order("bad"))
	recv.WaitN(t, 1, 30*time.Second)
	require.Eventually(t, func() bool {
		return debugJSON(t, url, "--event-id", fmt.Sprint(p.bad)).Outcome.Status == "dead"
	}, 30*time.Second, 50*time.Millisecond)
	p.dup = observertest.InsertChange(t, pool, order("ok"))
	p.skip = observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "odd", Kind: "TRUNCATE", Data: `{}`})
	require.Eventually(t, func() bool {
		return debugJSON(t, url, "--event-id", fmt.Sprint(p.skip)).Read.State == "read"
	}, 30*time.Second, 50*time.Millisecond)
	obs.Stop()
	p.late = observertest.InsertChange(t, pool, order("late"))
	require.NoError(t, pool.QueryRow(ctx, `SELECT id::text FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, p.ok).Scan(&p.okID))
	return p
}

func TestDebugEvent(t *testing.T) {
	t.Parallel()
	p := newDebugPipeline(t)

	t.Run("delivered, by uuid and by pk", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", p.okID)
		require.Equal(t, r, debugJSON(t, p.url, "--event-id", fmt.Sprint(p.ok)), "the uuid and the pk name the same change")
		require.Equal(t, p.ok, r.Event.PK)
		require.Equal(t, p.okID, r.Event.ID)
		require.Equal(t, "Order", r.Event.EntityType)
		require.Equal(t, "ok", r.Event.EntityID)
		require.Equal(t, "INSERT", r.Event.Kind)
		require.JSONEq(t, `{"status": "new", "total": 250}`, string(r.Event.Data))
		require.Equal(t, "core.tb_entity_change_log", r.Table)
		require.Equal(t, configRef{Source: "version", Version: 1, ListenerID: "dbg", Why: "the version its deliveries were matched under"}, r.Config)
		require.Equal(t, "read", r.Read.State)
		require.Empty(t, r.Skipped)

		verdicts := map[string]string{}
		for _, v := range r.Observers {
			verdicts[v.Observer] = v.Reason
			require.Equal(t, v.Reason == "", v.Matched, v.Observer)
		}
		require.Equal(t, map[string]string{"order_created": "", "order_updated": "kind", "big_orders": "condition_false",
			"strict_orders": "condition_error", "invoice_created": "entity"}, verdicts)
		for _, v := range r.Observers {
			switch v.Observer {
			case "strict_orders":
				require.Contains(t, v.Detail, `condition "status > 3"`)
			case "order_updated":
				require.Equal(t, "watches UPDATE, the change is INSERT", v.Detail)
			case "invoice_created":
				require.Equal(t, `watches entity "Invoice", the change is "Order"`, v.Detail)
			}
		}

		require.Len(t, r.Deliveries, 1)
		d := r.Deliveries[0]
		require.Equal(t, "order_created", d.Observer)
		require.Equal(t, "webhook", d.ActionType)
		require.Equal(t, "delivered", d.Status)
		require.Equal(t, "completed", d.State)
		require.Equal(t, 1, d.Attempt)
		require.True(t, d.InBatch)
		require.Equal(t, 3, d.MaxAttempts, "the observer's retry.max_attempts, not the batch job's")
		require.Empty(t, d.Errors)
		require.NotNil(t, d.FinalizedAt)
		require.Regexp(t, `^msg_[0-9a-f]{32}$`, d.MessageID)
		require.Equal(t, outcomeView{Status: "delivered", Matched: 1, Summary: "matched 1 observer: 1 delivered"}, r.Outcome)
		require.Equal(t, "claimed", r.Dedup.Outcome)
		require.True(t, *r.Dedup.KeyHeld)
		require.Equal(t, "10m", r.Dedup.Window)
		require.True(t, r.ResultCache.Enabled)
		require.Len(t, r.ResultCache.Entries, 1)
		c := r.ResultCache.Entries[0]
		require.Equal(t, "webhook", c.ActionType)
		require.Equal(t, 200, c.Status)
		require.Equal(t, d.JobID, c.SavedByJob, "saved during the delivery's attempt: it was sent")
	})

	t.Run("a 400 is dead with its error", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", fmt.Sprint(p.bad))
		require.Len(t, r.Deliveries, 1)
		d := r.Deliveries[0]
		require.Equal(t, "dead", d.Status)
		require.Equal(t, "cancelled", d.State)
		require.Equal(t, 1, d.Attempt)
		require.NotZero(t, d.BatchJobID, "the first attempt ran in a batch; the failure continues as its own job")
		require.Len(t, d.Errors, 1)
		require.Contains(t, d.Errors[0].Error, "400")
		require.Equal(t, "dead", r.Outcome.Status)
		require.Equal(t, "matched 1 observer: 1 dead", r.Outcome.Summary)

		code, out, errOut := runDebugCLI(t, "--database-url", p.url, "--event-id", fmt.Sprint(p.bad))
		require.Equal(t, exitOK, code, errOut)
		require.Regexp(t, `webhook\s+dead\s+cancelled\s+1/3`, out)
		require.Regexp(t, `job \d+ attempt 1 at \S+: .*400`, out)
		require.NotContains(t, out, p.hookPassword)
		require.NotContains(t, out, "s3cret-debug")
	})

	t.Run("a duplicate names the change that claimed its content", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", fmt.Sprint(p.dup))
		require.Empty(t, r.Deliveries)
		require.Equal(t, "duplicate", r.Dedup.Outcome)
		require.Equal(t, p.ok, r.Dedup.DuplicateOfPK)
		require.Equal(t, p.okID, r.Dedup.DuplicateOfID)
		require.Equal(t, "latest", r.Config.Source, "no delivery names the version: the newest is used")
		require.Equal(t, "duplicate", r.Outcome.Status)
		require.Equal(t, fmt.Sprintf("matched 1 observer; not delivered: a duplicate of change %d", p.ok), r.Outcome.Summary)
	})

	t.Run("not read yet", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", fmt.Sprint(p.late))
		require.Equal(t, "not_read", r.Read.State)
		require.Equal(t, p.skip, r.Read.CheckpointPK)
		// (HeldByHorizon may be true: another test's transaction can be open.)
		require.Equal(t, "not_read", r.Outcome.Status)
		require.Equal(t, "not_consulted", r.Dedup.Outcome)
		require.Len(t, r.Observers, 5, "what it would match is shown all the same")

		// A change written after a transaction that is still open is held
		// back by the horizon.
		ctx := context.Background()
		tx, err := p.pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, `SELECT pg_current_xact_id()`)
		require.NoError(t, err)
		held := observertest.InsertChange(t, p.pool, observertest.Change{Entity: "Invoice", ID: "held", Kind: "INSERT", Data: `{}`})
		r = debugJSON(t, p.url, "--event-id", fmt.Sprint(held))
		require.True(t, r.Read.HeldByHorizon)
		require.Equal(t, "not read yet (an older transaction is still open)", r.Outcome.Summary)
		require.NoError(t, tx.Rollback(ctx))
	})

	t.Run("skipped, with the listener's reason", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", fmt.Sprint(p.skip))
		require.Equal(t, "skipped", r.Outcome.Status)
		require.Len(t, r.Skipped, 1)
		require.Equal(t, "dbg", r.Skipped[0].ListenerID)
		require.Contains(t, r.Skipped[0].Reason, `unknown modification_type "TRUNCATE"`)
		require.Contains(t, r.Outcome.Summary, "skipped: unknown modification_type")
		require.Equal(t, "TRUNCATE", r.Event.ModificationType)
		require.Empty(t, r.Event.Kind)
		require.Len(t, r.Observers, 5)
		for _, v := range r.Observers {
			require.Equal(t, "unknown_kind", v.Reason, v.Observer)
		}
		require.Equal(t, "not_consulted", r.Dedup.Outcome)
	})

	t.Run("--config tries a new file", func(t *testing.T) {
		r := debugJSON(t, p.url, "--event-id", fmt.Sprint(p.ok), "--config", p.newConfPath)
		require.Equal(t, "file", r.Config.Source)
		require.Equal(t, p.newConfPath, r.Config.File)
		require.Equal(t, 2, r.Outcome.Matched, "big_orders now matches total 250")
		require.Len(t, r.Deliveries, 1, "the deliveries are still those made")
	})

	t.Run("history", func(t *testing.T) {
		code, out, errOut := runDebugCLI(t, "--database-url", p.url, "--format", "json",
			"--entity-type", "Order", "--kind", "created", "--history", "10")
		require.Equal(t, exitOK, code, errOut)
		var h historyReport
		require.NoError(t, json.Unmarshal([]byte(out), &h))
		require.Equal(t, "INSERT", h.Kind)
		var got []string
		for _, l := range h.Events {
			got = append(got, fmt.Sprintf("%d %s %s", l.PK, l.EntityID, l.Outcome.Status))
		}
		require.Equal(t, []string{
			fmt.Sprintf("%d late not_read", p.late), fmt.Sprintf("%d ok duplicate", p.dup),
			fmt.Sprintf("%d bad dead", p.bad), fmt.Sprintf("%d ok delivered", p.ok),
		}, got)

		_, out, _ = runDebugCLI(t, "--database-url", p.url, "--entity-type", "Order", "--kind", "INSERT", "--history", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4, out) // title, header, two changes
		require.Regexp(t, `^`+strconv.FormatInt(p.late, 10)+`\s+\S+\s+\S+\s+Order late\s+INSERT\s+not read yet( \(an older transaction is still open\))?$`, lines[2])
		require.Regexp(t, `^`+strconv.FormatInt(p.dup, 10)+`\s.*a duplicate of change `+strconv.FormatInt(p.ok, 10)+`$`, lines[3])

		code, _, errOut = runDebugCLI(t, "--database-url", p.url, "--entity-type", "order")
		require.Equal(t, exitFailure, code)
		require.Contains(t, errOut, "case-sensitive")
	})

	t.Run("text", func(t *testing.T) {
		for name, pk := range map[string]int64{"delivered": p.ok, "dead": p.bad} {
			code, out, errOut := runDebugCLI(t, "--database-url", p.url, "--event-id", fmt.Sprint(pk))
			require.Equal(t, exitOK, code, errOut)
			checkGolden(t, "testdata/debug_event_"+name+".golden", maskDebugText(out))
		}
	})

	t.Run("not found", func(t *testing.T) {
		code, out, errOut := runDebugCLI(t, "--database-url", p.url, "--event-id", "999999")
		require.Equal(t, exitFailure, code)
		require.Empty(t, out)
		require.Contains(t, errOut, "change 999999 not found in core.tb_entity_change_log")
		require.Contains(t, errOut, "hint: is it the change's uuid (id) or its pk (pk_entity_change_log)? is --table right?")

		code, _, errOut = runDebugCLI(t, "--database-url", p.url, "--event-id", "order-1")
		require.Equal(t, exitUsage, code)
		require.Contains(t, errOut, "not a change pk (a number) or id (a uuid)")
	})
}

// maskDebugText replaces what changes from run to run (times, ids, txids,
// durations) and collapses the table padding that depends on their width.
func maskDebugText(s string) string {
	for _, m := range []struct{ re, with string }{
		{`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`, "<time>"},
		{`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`, "<uuid>"},
		{`msg_[0-9a-f]{32}`, "msg_<id>"},
		{`txid \d+`, "txid <n>"},
		{`127\.0\.0\.1:\d+`, "127.0.0.1:<port>"},
		{`job \d+`, "job <n>"},
		{`(?m)^  \d+( \(batch \d+\))?`, "  <job>"},
		{`\b\d+(\.\d+)?(ms|µs|s)\b`, "<took>"},
		{` {2,}`, "  "},
	} {
		s = regexp.MustCompile(m.re).ReplaceAllString(s, m.with)
	}
	return s
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateDebugGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/fraiseql-observers -run TestDebugEvent -update-debug-event")
	require.Equal(t, string(want), got)
}

func TestDebugEventUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to debug"},
		{[]string{"--event-id", "1", "--history", "3"}, "cannot be combined"},
		{[]string{"--entity-type", "Order", "--kind", "truncated"}, `--kind "truncated" is not a kind of change`},
		{[]string{"--history", "100000"}, "out of range"},
		{[]string{"--event-id", "1", "--format", "yaml"}, "--format"},
		{[]string{"--event-id", "1", "--table", "a.b.c"}, "--table"},
	} {
		code, _, errOut := runDebugCLI(t, append([]string{"--database-url", "postgres://127.0.0.1:1/x"}, tc.args...)...)
		require.Equal(t, exitUsage, code, tc.args)
		require.Contains(t, errOut, tc.want, tc.args)
		require.Contains(t, errOut, "hint: ", tc.args)
	}
	code, _, errOut := runDebugCLI(t, "--database-url", "postgres://127.0.0.1:1/x", "--event-id", "1")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "cannot reach the database")
}

// Without any stored configuration (the daemon never ran), a change is
// still shown, with what is known; an undecodable one with its reason.
func TestDebugEventWithoutConfig(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "TRUNCATE", Data: `{"a": 1}`})
	r := debugJSON(t, url, "--event-id", fmt.Sprint(pk))
	require.Equal(t, "none", r.Config.Source)
	require.Equal(t, "no_checkpoint", r.Read.State)
	require.Contains(t, r.Event.Undecodable, `unknown modification_type "TRUNCATE"`)
	require.Equal(t, "not_read", r.Outcome.Status)
	require.Contains(t, r.Outcome.Summary, "the listener will skip it")
	require.Empty(t, r.Observers)
}

// With the Redis dedup backend the key is not read; the outcome is
// inferred from the deliveries: a change without any, read and matched,
// whose twin (same content) has one, is its duplicate. The jobs are seeded
// as the listener and the workers leave them.
func TestDebugEventRedisDedupAndLargeData(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()
	cfg, diags, err := observers.Parse("redis.yaml", []byte(`listener: {id: rd}
redis: {url: "redis://127.0.0.1:6379/0"}
dedup: {backend: redis}
observers:
  orders:
    entity: Order
    events: [INSERT]
    actions: [{type: log}]
`))
	require.NoError(t, err, "%v", diags)
	v, err := obsriver.NewConfigStore(pool).Register(ctx, cfg)
	require.NoError(t, err)
	big := fmt.Sprintf(`{"blob": %q}`, strings.Repeat("x", 3000))
	first := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "7", Kind: "INSERT", Data: big})
	second := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "7", Kind: "INSERT", Data: big})
	statusSeed(t, pool, `INSERT INTO observer_checkpoints (listener_id, event_id, txid)
		SELECT 'rd', pk_entity_change_log, txid FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, second)
	args, err := json.Marshal(obsriver.ActionArgs{Seq: first, Observer: "orders", ActionType: "log", ConfigVersion: v.ID})
	require.NoError(t, err)
	statusSeed(t, pool, `INSERT INTO river_job (kind, args, state, attempt, max_attempts, attempted_at, finalized_at)
		VALUES ($1, $2, 'completed', 1, 5, now(), now())`, obsriver.ActionKind, args)

	r := debugJSON(t, url, "--event-id", fmt.Sprint(first))
	require.Equal(t, "claimed", r.Dedup.Outcome)
	require.Equal(t, "delivered", r.Outcome.Status)
	require.Nil(t, r.Dedup.KeyHeld, "the Redis key is not read")
	require.JSONEq(t, big, string(r.Event.Data), "JSON shows the data whole")

	r = debugJSON(t, url, "--event-id", fmt.Sprint(second))
	require.Equal(t, "latest", r.Config.Source)
	require.Equal(t, "read", r.Read.State)
	require.Equal(t, "duplicate", r.Dedup.Outcome)
	require.Equal(t, first, r.Dedup.DuplicateOfPK)
	require.Contains(t, r.Dedup.Note, "the key lives in Redis and is not read here")
	require.Equal(t, "duplicate", r.Outcome.Status)

	code, out, errOut := runDebugCLI(t, "--database-url", url, "--event-id", fmt.Sprint(second))
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, `xxx… (3012 bytes; --format json shows all)`)
	require.Less(t, len(out), 3000+1000, "the text cuts the data")
}
