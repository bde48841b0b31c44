package postgres

import (
	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// rejectedClasses are the SQLSTATE classes (the code's first two
// characters) of errors that a retry would meet again: the statement or its
// data is wrong, not the server's condition. Every other class (connection,
// deadlock, serialization, cancel, resources) may pass on a retry. This set
// is the one place the rule lives; a new class is one line.
var rejectedClasses = map[string]bool{
	"22": true, // data exception: invalid JSON, division by zero, value out of range
	"23": true, // integrity constraint violation: unique, not null, check, foreign key
	"42": true, // syntax error or access rule violation: missing table or function, permission
	"54": true, // program limit exceeded: a value too large for an index row, too many columns
}

// Rejected reports whether err is an error of Postgres that a retry would
// meet again: a *pgconn.PgError (possibly wrapped) of a rejected SQLSTATE
// class (22 data exception, 23 integrity constraint violation, 42 syntax
// error or access rule violation, 54 program limit exceeded), or an error
// already marked
// storage.ErrRejected. Connection errors, timeouts, cancellations,
// deadlocks and serialization failures are not rejected.
//
// Code that runs SQL on behalf of users (the observers' database action)
// calls it to decide that a failed statement is permanent, so that the rule
// lives in one place. The stores of this package return their errors
// already marked; test those with errors.Is(err, storage.ErrRejected).
func Rejected(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, storage.ErrRejected) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) >= 2 && rejectedClasses[pgErr.Code[:2]]
}

// interpretError translates an error of pgx once, for every store of this
// package: pgx.ErrNoRows becomes storage.ErrNotFound; an error Rejected
// reports is marked storage.ErrRejected (markRejected), keeping its cause
// (errors.As still finds the *pgconn.PgError); anything else is returned unchanged, for the
// caller to retry. Callers add their context with errors.Wrap.
func interpretError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return storage.ErrNotFound
	case Rejected(err):
		return markRejected(err)
	}
	return err
}

// markRejected marks err as storage.ErrRejected, keeping it as the cause.
// Both errors.Is see the mark: cockroachdb's and the standard library's
// (which testify's ErrorIs uses, and which does not see errors.Mark).
func markRejected(err error) error { return &rejectedError{cause: err} }

type rejectedError struct{ cause error }

func (e *rejectedError) Error() string        { return e.cause.Error() }
func (e *rejectedError) Unwrap() error        { return e.cause }
func (e *rejectedError) Is(target error) bool { return target == storage.ErrRejected }

// sqlState returns the SQLSTATE of the *pgconn.PgError in err's chain, or
// "" when there is none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
