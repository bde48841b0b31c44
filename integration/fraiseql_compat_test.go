package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// On a database where FraiseQL already ran (uuid object_id, its own
// observer_checkpoints with last_processed_id), `migrate` extends the tables
// and `run` resumes after FraiseQL's position instead of replaying the log.
func TestResumesAfterFraiseQLCheckpoint(t *testing.T) {
	t.Parallel()
	url := sqltest.NewEmptyDB(t)
	pool := sqltest.NewPool(t, url)
	ctx := context.Background()
	_, err := pool.Exec(ctx, sqltest.FraiseQLSchema+`
INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, fk_customer_org, fk_contact)
SELECT 'Order', ('00000000-0000-0000-0000-00000000000' || g)::uuid, 'INSERT', jsonb_build_object('n', g),
       '11111111-1111-1111-1111-111111111111', 42
FROM generate_series(1, 3) g;
INSERT INTO observer_checkpoints (listener_id, last_processed_id, last_processed_at) VALUES ('it', 2, now());
`)
	require.NoError(t, err)

	out, err := exec.Command(binary, "migrate", "--database-url", url).CombinedOutput()
	require.NoError(t, err, string(out))

	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL()))))
	d := recv.WaitN(t, 1, 30*time.Second)[0]
	var env map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &env))
	require.Equal(t, "00000000-0000-0000-0000-000000000003", env["entity_id"], "only the row after FraiseQL's checkpoint")
	require.Equal(t, "42", env["user_id"])
	require.Equal(t, "11111111-1111-1111-1111-111111111111", env["tenant_id"])

	// New rows (with a txid) follow the old ones (without).
	_, err = pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', '00000000-0000-0000-0000-000000000004', 'INSERT', '{}')`)
	require.NoError(t, err)
	d = recv.WaitN(t, 1, 30*time.Second)[0]
	require.Contains(t, string(d.Body), "00000000-0000-0000-0000-000000000004")
	recv.Quiet(t, 300*time.Millisecond)
	require.Len(t, recv.All(), 2)
}
