package buildinfo

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReadTakesVersionAndCommitFromTheBuildInfo(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/fraiseql/fraiseql-observers", Version: "v0.0.0-20261201152022-75fa41acedfb+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "75fa41acedfb486fb6a61535067582153dd129f6"},
			{Key: "vcs.time", Value: "2026-12-01T15:20:22Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	in := read(bi, true)
	require.Equal(t, "v0.0.0-20261201152022-75fa41acedfb+dirty", in.Version)
	require.Equal(t, "github.com/fraiseql/fraiseql-observers", in.Module)
	require.Equal(t, "75fa41acedfb486fb6a61535067582153dd129f6", in.Commit)
	require.True(t, in.Dirty)
	require.Equal(t, time.Date(2026, 12, 1, 15, 20, 22, 0, time.UTC), *in.CommitTime)
	require.Equal(t, "go1.26.8", in.GoVersion)
}

func TestReadWithoutVCSIsDevel(t *testing.T) {
	t.Parallel()
	in := read(&debug.BuildInfo{Main: debug.Module{Path: "m", Version: "(devel)"}}, true)
	require.Equal(t, Devel, in.Version)
	require.Empty(t, in.Commit)
	require.Nil(t, in.CommitTime)
	require.Equal(t, Devel, read(nil, false).Version)
}

func TestGetReadsTheTestBinary(t *testing.T) {
	t.Parallel()
	require.NotEmpty(t, Version())
	require.Equal(t, "github.com/fraiseql/fraiseql-observers", Get().Module)
}
