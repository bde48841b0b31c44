package redis

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExactKey(t *testing.T) {
	t.Parallel()
	for pattern, want := range map[string]string{"a:b": "a:b", `a:\*`: "a:*", `\[x\]\\`: `[x]\`} {
		got, exact := ExactKey(pattern)
		require.True(t, exact, pattern)
		require.Equal(t, want, got)
	}
	for _, pattern := range []string{"a:*", "a?", "[ab]", `\\*`} {
		_, exact := ExactKey(pattern)
		require.False(t, exact, pattern)
	}
}
