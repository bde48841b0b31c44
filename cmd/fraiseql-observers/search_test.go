package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSearchOptsValidate(t *testing.T) {
	t.Parallel()
	ok := searchOpts{Format: "text", Limit: 50}
	require.NoError(t, ok.Validate())
	for _, tc := range []struct {
		name string
		mod  func(o *searchOpts)
		want string
	}{
		{"limit 0", func(o *searchOpts) { o.Limit = 0 }, "--limit 0 is out of range"},
		{"limit too large", func(o *searchOpts) { o.Limit = 10_001 }, "--limit 10001 is out of range"},
		{"unknown status", func(o *searchOpts) { o.Status = "failing" }, `--status "failing" is not an audit status`},
		{"documents have no status", func(o *searchOpts) { o.Index, o.Status = "orders", "dead" }, "--index searches entity documents"},
		{"format", func(o *searchOpts) { o.Format = "yaml" }, "yaml"},
	} {
		o := ok
		tc.mod(&o)
		require.ErrorContains(t, o.Validate(), tc.want, tc.name)
	}
}

func TestAgeOrTime(t *testing.T) {
	t.Parallel()
	got, err := ageOrTime("since", "24h")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(-24*time.Hour), got, time.Minute)
	got, err = ageOrTime("since", "2d")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(-48*time.Hour), got, time.Minute)
	got, err = ageOrTime("until", "2026-12-01T09:00:00Z")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), got.UTC())
	got, err = ageOrTime("since", "")
	require.NoError(t, err)
	require.True(t, got.IsZero())
	_, err = ageOrTime("since", "yesterday")
	require.ErrorContains(t, err, `--since "yesterday" is neither an age nor a time`)

	got, err = ageOrTime("since", "2026-11-30")
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), got)
}
