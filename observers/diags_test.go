package observers_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// errorDiags parses src and returns its error diagnostics, rendered.
func errorDiags(t *testing.T, name, src string) []string {
	t.Helper()
	cfg, diags, err := observers.Parse(name, []byte(src))
	require.Error(t, err)
	require.Nil(t, cfg)
	var out []string
	for _, d := range diags.Errors() {
		out = append(out, d.String())
	}
	return out
}
