package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/daemon"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// recorder is a test-only action type, written as any new type would be:
// one type that decodes its block, one action that runs a delivery, and the
// registration line below. Nothing else in the code base knows it.
type recorder struct{}

var delivered = make(chan string, 10)

func init() { observers.RegisterActionType(recorder{}) } // the one registration line

func (recorder) Name() string { return "test_recorder" }

func (recorder) Schema() []byte {
	return []byte(`{"type": "object", "properties": {"type": {"const": "test_recorder"}, "label": {"type": "string"}},
		"additionalProperties": false}`)
}

func (recorder) Decode(b *observers.ActionBlock) observers.Action {
	a := &recordAction{}
	for _, f := range b.Fields() {
		if f.Key() == "label" {
			a.label = f.String()
		}
	}
	if a.label == "" {
		b.Errorf(b.Where()+": test_recorder needs label", "set label: something")
	}
	return a
}

type recordAction struct{ label string }

func (*recordAction) Type() string                  { return "test_recorder" }
func (*recordAction) AttemptTimeout() time.Duration { return 0 }
func (a *recordAction) Settings() []observers.Setting {
	return []observers.Setting{{Key: "label", Value: a.label}}
}

func (a *recordAction) Run(_ context.Context, d *observers.Delivery) error {
	delivered <- fmt.Sprintf("%s %s %s/%s %s", a.label, d.Observer.Name, d.Event.EntityType, d.Event.EntityID, d.Event.Kind)
	return nil
}

// A new action type is one package and one registration line: the decoder
// reports its problems with positions, and the daemon (listener, River
// workers, the batch design) runs its deliveries end to end, from a row of
// the change log to the type's Run.
func TestNewActionTypeEndToEnd(t *testing.T) {
	t.Parallel()
	_, diags, err := observers.Parse("x.yaml", []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n      - type: test_recorder\n        lable: x\n"))
	require.Error(t, err)
	var lines []string
	for _, d := range diags {
		lines = append(lines, strings.SplitN(d.String(), "\n", 2)[0])
	}
	require.Equal(t, []string{
		`x.yaml:6:7: observers.o.actions[0]: test_recorder needs label`,
		`x.yaml:7:9: unknown key "lable" in observers.o.actions[0]`,
	}, lines)
	require.Contains(t, diags[1].Hint, `did you mean "label"?`)

	pool, url := sqltest.NewDB(t)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`listener: {poll_interval: 100ms}
observers:
  orders:
    entity: Order
    events: [INSERT]
    actions:
      - type: test_recorder
        label: recorded
`), 0o600))
	ctx := context.Background()
	d, err := daemon.New(ctx, daemon.Options{ConfigPath: cfg, DatabaseURL: url, DrainTimeout: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, d.Start(ctx))
	t.Cleanup(d.Stop)

	_, err = pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', '42', 'INSERT', '{"total": 10}')`)
	require.NoError(t, err)
	select {
	case got := <-delivered:
		require.Equal(t, "recorded orders Order/42 INSERT", got)
	case <-time.After(30 * time.Second):
		t.Fatal("the test_recorder action did not run")
	}
}
