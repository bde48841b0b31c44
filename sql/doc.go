// Package sql holds the observer's schema: goose migrations (embedded), the
// sqlc queries (generated into sql/dbsqlc) and Migrate, which brings a
// database up to date with River's schema and ours.
package sql
