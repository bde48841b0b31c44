package daemon

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/metrics.golden from the registry")

// The metrics every owner registers (listener, workers, breakers, result
// cache) are exactly those the dashboards know: testdata/metrics.golden is
// the list from before the metrics moved to their owners, names, help
// texts and labels. A renamed metric or label fails here; a metric added
// on purpose is written with `go test ./daemon -run
// TestMetricNamesAndLabelsDoNotChange -update`, and the diff reviewed.
func TestMetricNamesAndLabelsDoNotChange(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	cfg := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	reg := prometheus.NewRegistry()
	d, err := New(context.Background(), Options{ConfigPath: cfg, DatabaseURL: url, Registry: reg})
	require.NoError(t, err)
	t.Cleanup(d.close)

	ch := make(chan *prometheus.Desc, 100)
	go func() { reg.Describe(ch); close(ch) }()
	var got []string
	for desc := range ch {
		got = append(got, desc.String())
	}
	sort.Strings(got)
	if *updateGolden {
		require.NoError(t, os.WriteFile("testdata/metrics.golden", []byte(strings.Join(got, "\n")+"\n"), 0o600))
	}
	want, err := os.ReadFile("testdata/metrics.golden")
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(want)), strings.Join(got, "\n"))
}
