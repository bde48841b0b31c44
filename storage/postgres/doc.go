// Package postgres implements the storage interfaces on PostgreSQL, the
// default backend: the shared circuit-breaker state (BreakerStore), the
// dedup claims (Dedup), the cache (Cache), the search documents (Search)
// and the audit trail (Audit), each in tables of the observer's schema,
// through the queries sqlc generates in sql/dbsqlc or, for the queries
// whose filters vary (Search.Query, Audit.Search) and the audit's batch
// insert, hand-written SQL whose values are all bound parameters.
//
// Errors of the driver are translated in one place for every store:
// pgx.ErrNoRows becomes storage.ErrNotFound, and an error a retry would meet
// again (see Rejected) is marked storage.ErrRejected with its cause kept.
// Callers test them with errors.Is and never import pgx to do so.
package postgres
