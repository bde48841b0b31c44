package observers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour,
		"90m": 90 * time.Minute, "500ms": 500 * time.Millisecond, " 24h ": 24 * time.Hour,
		"1.5d": 36 * time.Hour, "-1d": -24 * time.Hour, "-1s": -time.Second, "1w2d3h": (9*24 + 3) * time.Hour,
	} {
		got, err := observers.ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "30", "3x", "--1d", "1d-5m", ".d", "1dd", "abc"} {
		_, err := observers.ParseDuration(in)
		require.Error(t, err, in)
	}
}
