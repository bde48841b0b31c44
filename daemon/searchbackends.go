package daemon

import (

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// SearchBackends are the stores the search: and audit: blocks choose.
type SearchBackends struct {
	Search storage.Search // where the search action writes (search.backend)
	// Audit is the audit trail's store (audit.backend); nil when audit is
	// off.
	Audit storage.Audit
	// ES is the Elasticsearch client when either block uses it; nil
	// otherwise.
	ES *elasticsearch.Client
}

// OpenSearchBackends makes the stores of cfg's search: and audit: blocks on
// pool, and the Elasticsearch client when one of them names it. getenv
// reads the elasticsearch: block's *_env secrets. It does not contact
// Elasticsearch (EnsureTemplates and Ping do).
func OpenSearchBackends(cfg *observers.Config, pool *pgxpool.Pool, getenv func(string) string) (*SearchBackends, error) {
	b := &SearchBackends{}
	if cfg.Search.Backend == observers.BackendElasticsearch || cfg.Audit.Enabled && cfg.Audit.Backend == observers.BackendElasticsearch {
		es := cfg.Elasticsearch
		c, err := elasticsearch.New(elasticsearch.Config{
			URL: es.URL, APIKey: env(getenv, es.APIKeyEnv), Username: env(getenv, es.UsernameEnv),
			Password: env(getenv, es.PasswordEnv), CAFile: es.CAFile,
		})
		if err != nil {
			return nil, errors.Wrap(err, "elasticsearch:")
		}
		b.ES = c
	}
	if cfg.Search.Backend == observers.BackendElasticsearch {
		b.Search = b.ES.Search()
	} else {
		b.Search = postgres.NewSearch(pool)
	}
	if cfg.Audit.Enabled {
		if cfg.Audit.Backend == observers.BackendElasticsearch {
			b.Audit = b.ES.Audit()
		} else {
			b.Audit = postgres.NewAudit(pool)
		}
	}
	return b, nil
}

func env(getenv func(string) string, name string) string {
	if name == "" {
		return ""
	}
	return getenv(name)
}
