// Package search is the search action type (type: search): the entity's
// document indexed under its id (or deleted on a DELETE) in the search
// store (storage.Search: Postgres by default).
package search
