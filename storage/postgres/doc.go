// Package postgres implements the storage interfaces on PostgreSQL, the
// default backend: the shared circuit-breaker state (BreakerStore), the
// dedup claims (Dedup), the cache (Cache) and the search documents
// (Search), each in tables of the observer's schema and through the queries
// sqlc generates in sql/dbsqlc.
//
// Errors of the driver are translated in one place for every store:
// pgx.ErrNoRows becomes storage.ErrNotFound, and an error a retry would meet
// again (see Rejected) is marked storage.ErrRejected with its cause kept.
// Callers test them with errors.Is and never import pgx to do so.
package postgres
