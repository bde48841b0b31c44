// Package database is the database action type (type: database): a SQL
// function called with the event envelope and the action's params, in its
// own transaction with a statement timeout. An error Postgres rejects for
// good (postgres.Rejected) is permanent; the others are retried.
package database
