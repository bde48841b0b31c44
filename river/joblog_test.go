package river

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// River's lines about an action job that just failed name its delivery;
// lines about other jobs, and about a job whose entry expired, do not.
func TestJobLogHandlerNamesFailedJobs(t *testing.T) {
	t.Parallel()
	jobs := newJobLog()
	var buf bytes.Buffer
	logger := slog.New(&jobLogHandler{h: slog.NewJSONHandler(&buf, nil), jobs: jobs}).With(slog.String("component", "river"))
	jobs.put(&river.Job[ActionArgs]{JobRow: &rivertype.JobRow{ID: 7, Attempt: 2},
		Args: ActionArgs{Seq: 11, EventID: "ev-11", Observer: "o", Action: 1, ActionType: "webhook", Replay: 3}})
	jobs.put(&river.Job[ActionArgs]{JobRow: &rivertype.JobRow{ID: 8, Attempt: 1}, Args: ActionArgs{EventID: "old"}})
	jobs.mu.Lock()
	e := jobs.m[8]
	e.at = time.Now().Add(-2 * jobLogTTL)
	jobs.m[8] = e
	jobs.mu.Unlock()

	logger.InfoContext(context.Background(), "jobexecutor.JobExecutor: Job errored", slog.Int64("job_id", 7), slog.String("job_kind", ActionKind))
	logger.InfoContext(context.Background(), "other job", slog.Int64("job_id", 9))
	logger.InfoContext(context.Background(), "expired job", slog.Int64("job_id", 8))
	logger.InfoContext(context.Background(), "no job")

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		lines = append(lines, m)
	}
	require.Len(t, lines, 4)
	for k, v := range map[string]any{"event_id": "ev-11", "event_seq": 11.0, "observer": "o", "action_type": "webhook",
		"action_index": 1.0, "attempt": 2.0, "replay": 3.0, "job_id": 7.0, "component": "river"} {
		require.Equal(t, v, lines[0][k], k)
	}
	for _, l := range lines[1:] {
		require.NotContains(t, l, "event_id")
	}

	// A later put sweeps the expired entry.
	jobs.mu.Lock()
	jobs.swept = time.Time{}
	jobs.mu.Unlock()
	jobs.put(&river.Job[ActionArgs]{JobRow: &rivertype.JobRow{ID: 10}})
	require.Nil(t, jobs.get(8))
	jobs.mu.Lock()
	defer jobs.mu.Unlock()
	require.Len(t, jobs.m, 2)
}
