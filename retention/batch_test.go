package retention

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Rows per deleting statement follow the statement's time towards
// BatchTime, at most doubling or halving at once, within bounds.
func TestNextRows(t *testing.T) {
	t.Parallel()
	target := 10 * time.Millisecond
	for _, c := range []struct {
		rows int
		took time.Duration
		want int
	}{
		{1000, 10 * time.Millisecond, 1000},
		{1000, 5 * time.Millisecond, 2000},
		{1000, time.Millisecond, 2000},     // at most doubled
		{1000, 40 * time.Millisecond, 500}, // at most halved
		{1000, 16 * time.Millisecond, 625},
		{8000, time.Millisecond, 10_000}, // BatchRows at most
		{150, time.Second, batchRowsMin}, // never below batchRowsMin
		{1000, 0, 2000},
	} {
		require.Equal(t, c.want, nextRows(c.rows, c.took, target, 10_000), "%d rows in %s", c.rows, c.took)
	}
}
