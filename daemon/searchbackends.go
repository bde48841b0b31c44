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
	// ES is the elasticsearch: block's cluster when search: or audit: keeps
	// its data there; nil otherwise.
	ES *elasticsearch.Client
}

// OpenSearchBackends makes the stores of cfg's search: and audit: blocks on
// pool, and the Elasticsearch client when one of them names it, with the
// credentials of the elasticsearch: block's *_env variables (getenv). It
// does not contact Elasticsearch (EnsureTemplates and Ping do). `run` and
// the commands that read the trail (search, dlq show, debug-event, migrate
// --search) share it.
func OpenSearchBackends(cfg *observers.Config, pool *pgxpool.Pool, getenv func(string) (string, bool)) (*SearchBackends, error) {
	b := &SearchBackends{Search: postgres.NewSearch(pool)}
	auditES := cfg.Audit.Enabled && cfg.Audit.Backend == observers.BackendElasticsearch
	if es := cfg.Elasticsearch; es != nil && (cfg.Search.Backend == observers.BackendElasticsearch || auditES) {
		creds, err := es.ResolvedCredentials(getenv)
		if err != nil {
			return nil, err
		}
		c, err := elasticsearch.New(elasticsearch.Config{
			URL: es.URL, APIKey: creds.APIKey, Username: creds.Username, Password: creds.Password, CAFile: es.CAFile,
		})
		if err != nil {
			return nil, errors.WithHint(errors.Wrap(err, "elasticsearch"), "check the elasticsearch: block (url, ca_file)")
		}
		b.ES = c
		if cfg.Search.Backend == observers.BackendElasticsearch {
			b.Search = c.Search()
		}
	}
	if cfg.Audit.Enabled {
		if auditES && b.ES != nil {
			b.Audit = b.ES.Audit() // its first write installs the templates if the start could not
		} else {
			b.Audit = postgres.NewAudit(pool)
		}
	}
	return b, nil
}
