package elasticsearch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

// newClient starts a server and returns a client of it, templates
// installed.
func newClient(t *testing.T, opts ...estest.Option) (*elasticsearch.Client, *estest.Server) {
	t.Helper()
	srv := estest.New(t, opts...)
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	require.NoError(t, c.EnsureTemplates(context.Background()))
	return c, srv
}

func TestSearchSuite(t *testing.T) {
	storagetest.RunSearch(t, storagetest.SearchHarness{New: func(t *testing.T) storage.Search {
		c, _ := newClient(t)
		return c.Search()
	}})
}

func TestAuditSuite(t *testing.T) {
	storagetest.RunAudit(t, storagetest.AuditHarness{New: func(t *testing.T) storage.Audit {
		c, _ := newClient(t)
		return c.Audit()
	}})
}
