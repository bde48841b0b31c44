package postgres_test

import (
	"testing"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

// The shared suites of the search and audit backends, each store in a
// database of its own.
func TestSearchSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunSearch(t, storagetest.SearchHarness{New: func(t *testing.T) storage.Search {
		pool, _ := sqltest.NewDB(t)
		return postgres.NewSearch(pool)
	}})
}

func TestAuditSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunAudit(t, storagetest.AuditHarness{New: func(t *testing.T) storage.Audit {
		pool, _ := sqltest.NewDB(t)
		return postgres.NewAudit(pool)
	}})
}
