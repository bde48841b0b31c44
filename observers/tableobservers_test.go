package observers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"

	"github.com/stretchr/testify/require"
)

const tableFile = "listener:\n  id: t\nobservers_table: core.tb_observer\nobservers:\n  from_file:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - {type: log}\n"

func strp(s string) *string { return &s }

func TestTableObserversConvert(t *testing.T) {
	t.Parallel()
	ms := int64(1500)
	rows := []observers.TableObserver{
		{Name: "order_created", EntityType: strp("Order"), EventType: strp("created"),
			ConditionExpression: strp("status == 'new'"),
			Actions:             []byte(`[{"type": "webhook", "url": "https://example.com/h"}, {"type": "webhook", "url": "https://example.com/i", "timeout": "3s"}, {"type": "log"}]`),
			RetryConfig:         []byte(`{"max_attempts": 7, "backoff_strategy": "linear"}`), TimeoutMS: &ms},
		{Name: "any_change", Actions: []byte(`[{"type": "log"}]`)},
	}
	cfg, diags, err := observers.ParseWithTable("obs.yaml", []byte(tableFile), rows, envOf(nil))
	require.NoError(t, err)
	require.Empty(t, diags.Errors())
	require.Equal(t, "core.tb_observer", cfg.ObserversTable)
	require.Len(t, cfg.Observers, 3)

	o := cfg.Observer("order_created")
	require.NotNil(t, o)
	require.Equal(t, "Order", o.Entity)
	require.Equal(t, []observers.Kind{observers.KindInsert}, o.Events)
	require.NotNil(t, o.Condition)
	require.Equal(t, 1500*time.Millisecond, o.Actions[0].(*webhook.Action).Timeout, "timeout_ms is the default")
	require.Equal(t, 3*time.Second, o.Actions[1].(*webhook.Action).Timeout, "an action's own timeout wins")
	require.Equal(t, 7, o.Retry.MaxAttempts)
	require.Equal(t, observers.BackoffLinear, o.Retry.BackoffStrategy)

	a := cfg.Observer("any_change")
	require.Equal(t, "*", a.Entity)
	require.Equal(t, []observers.Kind{observers.KindInsert, observers.KindUpdate, observers.KindDelete, observers.KindCustom}, a.Events)

	// The stored version rebuilds the same configuration.
	v, _, err := observers.ParseVersion("config-version-1.yaml", cfg.Source)
	require.NoError(t, err)
	require.Equal(t, cfg.Hash, v.Hash)
	require.Len(t, v.Observers, 3)
	require.Equal(t, 1500*time.Millisecond, v.Observer("order_created").Actions[0].(*webhook.Action).Timeout)

	// A plain file's version is the file.
	plain, _, err := observers.Parse("obs.yaml", []byte(tableFile))
	require.NoError(t, err)
	require.Equal(t, []byte(tableFile), plain.Source)
	require.NotEqual(t, plain.Hash, cfg.Hash, "the hash covers the rows")
	require.Len(t, plain.Observers, 1)
}

func TestTableObserversBadRow(t *testing.T) {
	t.Parallel()
	rows := []observers.TableObserver{
		{Name: "order_created", EntityType: strp("Order"), EventType: strp("INSERTED"),
			Actions: []byte(`[{"type": "webhook", "url": "ftp://example.com/h", "colour": "red"}]`)},
		{Name: "from_file", Actions: []byte(`[{"type": "log"}]`)},
		{Name: "bad_retry", Actions: []byte(`[{"type": "log"}]`), RetryConfig: []byte(`{"max_attempt": 3}`)},
	}
	_, diags, err := observers.ParseWithTable("obs.yaml", []byte(tableFile), rows, envOf(nil))
	require.Error(t, err)
	var lines []string
	for _, d := range diags.Errors() {
		lines = append(lines, d.String())
	}
	text := strings.Join(lines, "\n")
	require.Contains(t, text, `tb_observer[order_created]: unknown event kind "INSERTED"`)
	require.Contains(t, text, `tb_observer[order_created]: unknown key "colour" in actions[0]`)
	require.Contains(t, text, "tb_observer[order_created]: actions[0].url is not a valid webhook URL: scheme must be http or https\n  hint: ")
	require.Contains(t, text, `tb_observer[from_file]: observer "from_file" is also defined in obs.yaml`)
	require.Contains(t, text, `tb_observer[bad_retry]: unknown key "max_attempt" in retry`)
	require.Contains(t, text, `did you mean "max_attempts"?`)
	require.Contains(t, err.Error(), "5 problems")
}
