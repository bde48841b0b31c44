package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const replaySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// replayConfigYAML has two observers, one per entity, each with one signed
// webhook; dedup and the result cache are on, and a replay bypasses both.
const replayConfigYAML = `allow_private_targets: true
dedup: {enabled: true, backend: postgres, window: 5m}
cache: {backend: postgres, ttl: 5m}
observers:
  order_created:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url_env: HOOK_ORDERS, signing_secret_env: HOOK_SECRET}
  user_created:
    entity: User
    events: [INSERT]
    actions:
      - {type: webhook, url_env: HOOK_USERS, signing_secret_env: HOOK_SECRET}
`

func runReplayCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(append([]string{"replay"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// runReplayOpts runs the command with opts (and their test hooks) as
// execute would, returning the exit code.
func runReplayOpts(t *testing.T, ctx context.Context, opts *replayOpts) (code int, stdout, stderr string) {
	t.Helper()
	if opts.Format == "" {
		opts.Format = "json"
	}
	if opts.Limit == 0 {
		opts.Limit = 20
	}
	var out, errOut bytes.Buffer
	err := opts.Validate()
	if err == nil {
		err = runReplay(ctx, opts, &out, &errOut)
	}
	if err == nil {
		return exitOK, out.String(), errOut.String()
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code, out.String(), errOut.String() + err.Error()
	}
	return exitUsage, out.String(), errOut.String() + err.Error()
}

// replayEnv is a running observer with a receiver, and the changes it
// delivered once: their pks in insertion order and the webhook-id each
// entity's delivery carried.
type replayEnv struct {
	pool     *pgxpool.Pool
	url      string
	recv     *observertest.Receiver
	pks      []int64
	entities []string
	original map[string]string // entity id → webhook-id
}

// newReplayEnv starts the observer, writes changes (Order and User
// inserts, in the order given: "o1", "u1", ...) and waits for their
// deliveries.
func newReplayEnv(t *testing.T, ids ...string) *replayEnv {
	t.Helper()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: replaySecret})
	obs := observertest.Run(t, observertest.Options{DatabaseURL: url, Config: replayConfigYAML, Env: map[string]string{
		"HOOK_ORDERS": recv.URL() + "/orders", "HOOK_USERS": recv.URL() + "/users", "HOOK_SECRET": replaySecret,
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, obs.WaitLeader(ctx))
	e := &replayEnv{pool: pool, url: url, recv: recv, entities: ids, original: map[string]string{}}
	for i, id := range ids {
		entity := "Order"
		if strings.HasPrefix(id, "u") {
			entity = "User"
		}
		e.pks = append(e.pks, observertest.InsertChange(t, pool, observertest.Change{
			Entity: entity, ID: id, Kind: "INSERT", Data: fmt.Sprintf(`{"n": %d}`, i),
		}))
	}
	for _, d := range recv.WaitN(t, len(ids), 30*time.Second) {
		e.original[entityOf(t, d)] = d.ID
	}
	require.Len(t, e.original, len(ids))
	return e
}

func entityOf(t *testing.T, d observertest.Delivery) string {
	t.Helper()
	require.NoError(t, d.SignatureErr)
	var env struct {
		EntityID string `json:"entity_id"`
	}
	require.NoError(t, json.Unmarshal(d.Body, &env), string(d.Body))
	return env.EntityID
}

// expectReplayed waits for the deliveries of want (entity ids), checks that
// each carries its original webhook-id, and that nothing else arrives.
func (e *replayEnv) expectReplayed(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	if len(want) > 0 {
		for _, d := range e.recv.WaitN(t, len(want), 30*time.Second) {
			id := entityOf(t, d)
			require.Equal(t, e.original[id], d.ID, "the replayed delivery of %s keeps its webhook-id", id)
			got = append(got, id)
		}
	}
	sort.Strings(got)
	want = append([]string{}, want...)
	sort.Strings(want)
	require.Equal(t, want, got)
	e.recv.Quiet(t, 300*time.Millisecond)
}

type replayJSON struct {
	Replay struct {
		ID         int64  `json:"id"`
		State      string `json:"state"`
		Total      int64  `json:"total"`
		Parameters struct {
			Beyond int64 `json:"beyond"`
		} `json:"parameters"`
		Counts struct {
			EventsRead    int64 `json:"events_read"`
			EventsMatched int64 `json:"events_matched"`
			Deliveries    int64 `json:"deliveries"`
			ByAction      []struct {
				Observer   string `json:"observer"`
				ActionType string `json:"action_type"`
				Deliveries int64  `json:"deliveries"`
			} `json:"by_action"`
		} `json:"counts"`
	} `json:"replay"`
	Resumed       bool  `json:"resumed"`
	LiveInstances int64 `json:"live_instances"`
}

func decodeReplay(t *testing.T, out string) replayJSON {
	t.Helper()
	var r replayJSON
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r
}

func TestReplayDeliversTheSelectedRangeAgain(t *testing.T) {
	t.Parallel()
	e := newReplayEnv(t, "o1", "u1", "o2", "u2", "o3", "u3", "o4", "u4", "o5", "o6")
	pk := func(i int) string { return fmt.Sprint(e.pks[i]) }

	// A pk range: --from inclusive, --to exclusive.
	code, out, errOut := runReplayCLI(t, "--database-url", e.url, "--format", "json", "--from", pk(2), "--to", pk(6))
	require.Equal(t, exitOK, code, errOut)
	r := decodeReplay(t, out)
	require.Equal(t, "finished", r.Replay.State)
	require.False(t, r.Resumed)
	require.EqualValues(t, 4, r.Replay.Total)
	require.EqualValues(t, 4, r.Replay.Counts.EventsRead)
	require.EqualValues(t, 4, r.Replay.Counts.Deliveries)
	require.EqualValues(t, 1, r.LiveInstances)
	require.Len(t, r.Replay.Counts.ByAction, 2)
	require.Equal(t, "order_created", r.Replay.Counts.ByAction[0].Observer)
	require.EqualValues(t, 2, r.Replay.Counts.ByAction[0].Deliveries)
	require.Equal(t, "webhook", r.Replay.Counts.ByAction[0].ActionType)
	e.expectReplayed(t, "o2", "u2", "o3", "u3")

	// One observer.
	code, out, errOut = runReplayCLI(t, "--database-url", e.url, "--from", pk(0), "--observer", "user_created")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Replay 2 finished")
	require.Contains(t, out, "10 read, 4 matched, 0 skipped")
	require.Regexp(t, `user_created\s+0\s+webhook\s+4`, out)
	require.Contains(t, out, "by the workers of the 1 running instance(s), with the original webhook-ids")
	e.expectReplayed(t, "u1", "u2", "u3", "u4")

	// One entity type, up to a pk.
	code, _, errOut = runReplayCLI(t, "--database-url", e.url, "--from", pk(0), "--to", pk(9), "--entity-type", "Order")
	require.Equal(t, exitOK, code, errOut)
	e.expectReplayed(t, "o1", "o2", "o3", "o4", "o5")

	// Times: created_at o1 = 00:00, u1 = 01:00, ... on 2024-05-01; o6 an
	// hour ago.
	_, err := e.pool.Exec(context.Background(), `UPDATE core.tb_entity_change_log
		SET created_at = '2024-05-01T00:00:00Z'::timestamptz + make_interval(hours => array_position($1::bigint[], pk_entity_change_log) - 1)`, e.pks)
	require.NoError(t, err)
	_, err = e.pool.Exec(context.Background(), `UPDATE core.tb_entity_change_log SET created_at = now() - interval '1 hour' WHERE pk_entity_change_log = $1`, e.pks[9])
	require.NoError(t, err)
	code, _, errOut = runReplayCLI(t, "--database-url", e.url, "--from", "2024-05-01T03:00:00Z", "--to", "2024-05-01T05:00:00Z")
	require.Equal(t, exitOK, code, errOut)
	e.expectReplayed(t, "u2", "o3")
	code, _, errOut = runReplayCLI(t, "--database-url", e.url, "--from", "2024-05-01", "--to", "2024-05-01T02:00:00+00:00")
	require.Equal(t, exitOK, code, errOut)
	e.expectReplayed(t, "o1", "u1")
	code, _, errOut = runReplayCLI(t, "--database-url", e.url, "--from", "2h")
	require.Equal(t, exitOK, code, errOut)
	e.expectReplayed(t, "o6")

	code, out, errOut = runReplayCLI(t, "--database-url", e.url, "--list")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `(?m)^1\s+finished\s+\S+\s+4/4\s+4\s+1\s+--from \d+ --to \d+$`, out)
	require.Regexp(t, `(?m)^2\s+finished\s+\S+\s+10/10\s+4\s+1\s+--from \d+ --observer user_created$`, out)
}

func TestReplayInterruptedResumesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	ids := []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9", "o10"}
	e := newReplayEnv(t, ids...)
	base := replayOpts{DatabaseURL: e.url, From: fmt.Sprint(e.pks[0]), BatchSize: 3}

	// Interrupted (as by Ctrl-C) once its first batch committed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := base
	o.batchDone = func(int) { cancel() }
	code, out, errOut := runReplayOpts(t, ctx, &o)
	require.Equal(t, exitFailure, code, errOut)
	require.Contains(t, errOut, "replay 1 interrupted")
	r := decodeReplay(t, out)
	require.Equal(t, "running", r.Replay.State)
	require.EqualValues(t, 3, r.Replay.Counts.EventsRead)
	require.EqualValues(t, 3, r.Replay.Counts.Deliveries)

	code, out, errOut = runReplayCLI(t, "--database-url", e.url, "--list")
	require.Equal(t, exitOK, code, errOut)
	require.Regexp(t, `(?m)^1\s+interrupted\s+\S+\s+3/10\s+3\s`, out)
	code, out, errOut = runReplayCLI(t, "--database-url", e.url, "--from", base.From, "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Deliveries: 10 would be enqueued")
	require.Contains(t, out, "Unfinished: replay 1 has these parameters; running without --dry-run resumes it")

	// The same command resumes it; its second batch fails before it
	// commits (as a kill -9 or a lost connection would): nothing of that
	// batch stays.
	o = base
	o.beforeCommit = func(_ context.Context, batch int) error {
		if batch == 2 {
			return errors.New("injected failure")
		}
		return nil
	}
	code, out, errOut = runReplayOpts(t, context.Background(), &o)
	require.Equal(t, exitFailure, code, errOut)
	require.Contains(t, errOut, "injected failure")
	r = decodeReplay(t, out)
	require.True(t, r.Resumed)
	require.EqualValues(t, 1, r.Replay.ID)
	require.EqualValues(t, 6, r.Replay.Counts.EventsRead)

	// --resume ID finishes it.
	code, out, errOut = runReplayCLI(t, "--database-url", e.url, "--resume", "1")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Replay 1 resumed (started ")
	require.Contains(t, out, "6 of 10 changes read so far")
	require.Contains(t, out, "Replay 1 finished")
	require.Contains(t, out, "10 read, 10 matched")
	require.Contains(t, out, "Deliveries: 10 enqueued")

	// Every change exactly once more, with its webhook-id.
	e.expectReplayed(t, ids...)

	code, _, errOut = runReplayCLI(t, "--database-url", e.url, "--resume", "1")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "replay 1 is finished: there is nothing to resume")
}

// seedReplayDB is a database where the listener of group "default" has
// passed the first passed of n Order changes, and an observers file; no
// observer runs.
func seedReplayDB(t *testing.T, n, passed int) (pool *pgxpool.Pool, url, configPath string, pks []int64) {
	t.Helper()
	pool, url = sqltest.NewDB(t)
	for i := range n {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{
			Entity: "Order", ID: fmt.Sprint("o", i+1), Kind: "INSERT", Data: fmt.Sprintf(`{"n": %d}`, i),
		}))
	}
	_, err := pool.Exec(context.Background(), `INSERT INTO observer_checkpoints (listener_id, txid, event_id)
		SELECT 'default', txid, pk_entity_change_log FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, pks[passed-1])
	require.NoError(t, err)
	configPath = filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(`allow_private_targets: true
observers:
  order_created:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url: "http://127.0.0.1:9/orders"}
      - {type: log}
`), 0o600))
	return pool, url, configPath, pks
}

func countRows(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func TestReplayDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	pool, url, configPath, pks := seedReplayDB(t, 10, 7)
	versions := countRows(t, pool, `SELECT count(*) FROM observer_config_versions`)

	code, out, errOut := runReplayCLI(t, "--database-url", url, "--config", configPath, "--from", fmt.Sprint(pks[1]), "--dry-run", "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var res struct {
		DryRun bool  `json:"dry_run"`
		Total  int64 `json:"total"`
		Beyond int64 `json:"beyond"`
		Bound  struct {
			PK int64 `json:"pk"`
		} `json:"bound"`
		Counts struct {
			EventsRead    int64 `json:"events_read"`
			EventsMatched int64 `json:"events_matched"`
			Deliveries    int64 `json:"deliveries"`
			ByAction      []struct {
				Action     int    `json:"action"`
				ActionType string `json:"action_type"`
				Deliveries int64  `json:"deliveries"`
			} `json:"by_action"`
		} `json:"counts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.True(t, res.DryRun)
	require.Equal(t, pks[6], res.Bound.PK)
	require.EqualValues(t, 6, res.Total, "changes 2 to 7: the listener passed them")
	require.EqualValues(t, 3, res.Beyond, "changes 8 to 10: the listener has not")
	require.EqualValues(t, 6, res.Counts.EventsRead)
	require.EqualValues(t, 6, res.Counts.EventsMatched)
	require.EqualValues(t, 12, res.Counts.Deliveries)
	require.Len(t, res.Counts.ByAction, 2)
	require.Equal(t, "log", res.Counts.ByAction[1].ActionType)
	require.EqualValues(t, 6, res.Counts.ByAction[1].Deliveries)

	code, out, errOut = runReplayCLI(t, "--database-url", url, "--config", configPath, "--from", fmt.Sprint(pks[1]), "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Dry run: nothing was enqueued or recorded\n")
	require.Contains(t, out, "Left out:   3 selected changes after the checkpoint")
	require.Contains(t, out, "Deliveries: 12 would be enqueued\n")

	require.Zero(t, countRows(t, pool, `SELECT count(*) FROM river_job`))
	require.Zero(t, countRows(t, pool, `SELECT count(*) FROM observer_replays`))
	require.Equal(t, versions, countRows(t, pool, `SELECT count(*) FROM observer_config_versions`))
}

func TestReplayLeavesOutChangesAfterTheCheckpoint(t *testing.T) {
	t.Parallel()
	pool, url, configPath, pks := seedReplayDB(t, 10, 7)

	code, out, errOut := runReplayCLI(t, "--database-url", url, "--config", configPath, "--from", "0")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "Left out:   3 selected changes after the checkpoint (the listener had not passed them)")
	require.Contains(t, out, "Deliveries: 14 enqueued")
	require.Contains(t, out, "no `fraiseql-observers run` instance is running: the jobs wait in the queue until one starts")

	// The jobs name the changes up to the checkpoint, each action once, at
	// the replay's priority, under the file's stored version.
	rows, err := pool.Query(context.Background(), `SELECT d.seq, d.action, j.priority, d.config_version
		FROM observer_deliveries d JOIN river_job j ON j.id = d.job_id ORDER BY d.seq, d.action`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var seq, version int64
		var action, priority int
		require.NoError(t, rows.Scan(&seq, &action, &priority, &version))
		require.Equal(t, 2, priority)
		require.Equal(t, countRows(t, pool, `SELECT max(id) FROM observer_config_versions`), version)
		got = append(got, fmt.Sprint(seq, "/", action))
	}
	require.NoError(t, rows.Err())
	var want []string
	for _, pk := range pks[:7] {
		want = append(want, fmt.Sprint(pk, "/0"), fmt.Sprint(pk, "/1"))
	}
	require.Equal(t, want, got)
	require.Zero(t, countRows(t, pool, `SELECT count(*) FROM observer_config_versions WHERE loaded_at IS NOT NULL`),
		"a file stored by replay is not what a daemon runs")

	// With no --config, the latest version a daemon loaded is used: none.
	code, _, errOut = runReplayCLI(t, "--database-url", url, "--from", "0")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "no configuration version was loaded by a `run` process")
	require.Contains(t, errOut, "hint: start `fraiseql-observers run` against this database once, or pass --config")
}

func TestReplayBadUsage(t *testing.T) {
	t.Parallel()
	_, url, configPath, _ := seedReplayDB(t, 2, 2)
	for _, tc := range []struct {
		args []string
		err  string
		hint string
	}{
		{[]string{"--from", "yesterday"}, `--from "yesterday" is neither a time nor a change-log pk`, "use an RFC3339 time (2024-05-01T12:00:00Z), a date (2024-05-01), an age (90m, 24h, 7d, 2w) or a pk (12345)"},
		{[]string{"--from", "0", "--to", "2024-13-01"}, `--to "2024-13-01" is neither a time nor a change-log pk`, "use an RFC3339 time"},
		{[]string{"--from", "10", "--to", "5"}, "--to 5 is not after --from 10: nothing is selected", "--from is inclusive and --to exclusive"},
		{[]string{"--to", "5"}, "--from is required", "pass where the replay starts"},
		{[]string{"--from", "0", "--observer", "order_creatd"}, `--observer "order_creatd" is not an observer of the configuration`, "the observers are: order_created"},
		{[]string{"--from", "0", "--listener", "other"}, "--listener other, but the configuration's listener.id is default", "pass --config with the observers file of listener group other"},
		{[]string{"--resume", "1", "--from", "0"}, "--list, --resume and --cancel take no selection", "a resumed replay keeps the selection"},
		{[]string{"--resume", "42"}, "replay 42 does not exist", "`fraiseql-observers replay --list` shows the replays"},
	} {
		args := append([]string{"--database-url", url, "--config", configPath}, tc.args...)
		if tc.args[0] == "--resume" {
			args = append([]string{"--database-url", url}, tc.args...)
		}
		code, out, errOut := runReplayCLI(t, args...)
		require.Equal(t, exitUsage, code, "%v: %s", tc.args, errOut)
		require.Empty(t, out)
		require.Contains(t, errOut, "error: "+tc.err, tc.args)
		require.Contains(t, errOut, "hint: "+tc.hint, tc.args)
	}
}

func TestParseBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"0":                         "pk 0",
		"12345":                     "pk 12345",
		"2024-05-01":                "2024-05-01T00:00:00Z",
		"2024-05-01T12:30:00+02:00": "2024-05-01T10:30:00Z",
		"2024-05-01T12:30:00.5Z":    "2024-05-01T12:30:00.5Z",
		"24h":                       "2024-05-09T12:00:00Z",
		"7d":                        "2024-05-03T12:00:00Z",
		"90m":                       "2024-05-10T10:30:00Z",
	} {
		pk, at, err := parseBound("from", in, now)
		require.NoError(t, err, in)
		got := ""
		if pk != nil {
			got = fmt.Sprint("pk ", *pk)
		} else {
			got = at.UTC().Format(time.RFC3339Nano)
		}
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-5", "0h", "-24h", "tomorrow", "2024-05-01 12:00", "99999999999999999999"} {
		_, _, err := parseBound("from", in, now)
		require.Error(t, err, in)
	}
}
