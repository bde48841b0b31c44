package observers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

func TestKindSpellings(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"CREATE", "CREATED", "INSERT"}, observers.KindInsert.Spellings())
	require.Equal(t, []string{"UPDATE", "UPDATED"}, observers.KindUpdate.Spellings())
	require.Equal(t, []string{"DELETE", "DELETED"}, observers.KindDelete.Spellings())
	require.Equal(t, []string{"CUSTOM"}, observers.KindCustom.Spellings())
	for _, k := range []observers.Kind{observers.KindInsert, observers.KindUpdate, observers.KindDelete, observers.KindCustom} {
		for _, s := range k.Spellings() {
			got, ok := observers.ParseKind(" " + strings.ToLower(s) + " ")
			require.True(t, ok, s)
			require.Equal(t, k, got, s)
		}
	}
	_, ok := observers.ParseKind("TRUNCATE")
	require.False(t, ok)
}
