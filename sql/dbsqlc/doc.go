// Package dbsqlc implements the observer's queries on PostgreSQL: sqlc
// generates it from sql/queries against the schema of sql/migrations, one
// method of Queries per query, run on a pool, a connection or a
// transaction. Only doc.go is written by hand; regenerate the rest with
// `just generate` after changing a query.
//
// Its errors are pgx's, untranslated. The stores of storage/postgres
// translate them; storage/postgres.Rejected says which a retry would meet
// again.
package dbsqlc
