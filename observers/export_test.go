package observers

import "slices"

// KeyTables are the decoder's key tables of the top-level blocks, by JSON
// pointer into schema/observers.schema.json, for the schema test (package
// observers_test).
var KeyTables = map[string][]string{
	"":                                        topKeys,
	"/properties/listener":                    listenerKeys,
	"/properties/workers":                     workersKeys,
	"/properties/concurrency":                 concurrencyKeys,
	"/properties/circuit_breaker":             breakerKeys,
	"/$defs/circuitBreaker":                   slices.DeleteFunc(slices.Clone(breakerKeys), func(k string) bool { return k == "backend" }),
	"/properties/smtp":                        smtpKeys,
	"/properties/redis":                       redisKeys,
	"/properties/dedup":                       dedupKeys,
	"/properties/cache":                       cacheKeys,
	"/properties/rate_limit":                  rateLimitKeys,
	"/properties/http":                        httpKeys,
	"/properties/retention":                   retentionKeys,
	"/properties/admin":                       adminKeys,
	"/properties/admin/properties/basic_auth": basicAuthKeys,
	"/properties/elasticsearch":               elasticsearchKeys,
	"/properties/search":                      searchKeys,
	"/properties/audit":                       auditKeys,
	"/$defs/observer":                         observerKeys,
	"/$defs/retry":                            retryKeys,
}

// CanonicalJSON is canonicalJSON, for the dedup key tests.
var CanonicalJSON = canonicalJSON
