package observers_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// rendered renders tpl, failing the test on an error.
func rendered(t *testing.T, tpl *observers.Template, data map[string]any, jsonEscape bool) string {
	t.Helper()
	s, err := tpl.Render(data, jsonEscape)
	require.NoError(t, err)
	return s
}
