package river

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Latest is the version a `run` process loaded last, even when that is an
// older one loaded again (a reverted change), and never one only stored by
// `replay --config`.
func TestConfigStoreLatest(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parse := func(src string) *observers.Config {
		cfg, _, err := observers.ParseWithEnv("v.yaml", []byte(src), func(string) (string, bool) { return "", false })
		require.NoError(t, err)
		return cfg
	}
	a := parse("observers:\n  a:\n    entity: Order\n    events: [INSERT]\n    actions: [{type: log}]\n")
	b := parse("observers:\n  b:\n    entity: Order\n    events: [INSERT]\n    actions: [{type: log}]\n")
	c := parse("observers:\n  c:\n    entity: Order\n    events: [INSERT]\n    actions: [{type: log}]\n")

	s := NewConfigStore(pool)
	_, err := s.Latest(ctx)
	require.True(t, errors.Is(err, storage.ErrNotFound), "%v", err)

	va, err := s.Register(ctx, a)
	require.NoError(t, err)
	vb, err := s.Register(ctx, b)
	require.NoError(t, err)
	require.Greater(t, vb.ID, va.ID)
	got, err := s.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, vb.ID, got.ID)

	again, err := s.Register(ctx, a) // b reverted
	require.NoError(t, err)
	require.Equal(t, va.ID, again.ID, "the same content is stored once")
	got, err = s.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, va.ID, got.ID)

	vc, err := s.Store(ctx, c)
	require.NoError(t, err)
	require.Greater(t, vc.ID, vb.ID)
	got, err = NewConfigStore(pool).Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, va.ID, got.ID, "a version only stored is not the one in use")
	require.Equal(t, "a", got.Config.Observers[0].Name)
}
