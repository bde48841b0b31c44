package search

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// An entity id too large for the document table's index fails with SQLSTATE
// 54000 (program limit exceeded) on every try: the delivery is permanent, not
// retried as transient for ever.
func TestActionEntityIDOverProgramLimitIsPermanent(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	b := make([]byte, 50_000)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b) // 100 KB that no compression shrinks below the btree's limit
	src := "observers:\n  o:\n    entity: '*'\n    events: [INSERT]\n    actions:\n      - type: search\n"
	cfg, _, err := observers.Parse("x.yaml", []byte(src))
	require.NoError(t, err)
	o := cfg.Observers[0]
	d := &observers.Delivery{
		Event:    &observers.Event{ID: "e-1", Seq: 1, Kind: observers.KindInsert, EntityType: "Order", EntityID: id, RawData: []byte(`{}`)},
		Observer: o, Config: cfg, Attempt: 1, Env: &observers.Env{Search: postgres.NewSearch(pool)},
	}
	err = o.Actions[0].Run(context.Background(), d)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "not a Postgres error: %.300s", err)
	require.Equal(t, "54", pgErr.Code[:2], "program limit exceeded, got SQLSTATE %s", pgErr.Code)
	require.True(t, observers.IsPermanent(err), "a retry meets the same limit, so the delivery is permanent")
	require.Less(t, len(err.Error()), 1000, "the message quotes the id, not all of it")
}
