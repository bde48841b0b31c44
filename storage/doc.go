// Package storage holds the small interfaces behind which the observer keeps
// state that may live outside Postgres: Dedup, Cache, BreakerStore, Search
// and Invalidator, with the errors they share (ErrNotFound, ErrUnavailable,
// ErrRejected, ErrLocked). Each has a Postgres implementation
// (storage/postgres, the default) or a Redis one (storage/redis), chosen by
// configuration; every implementation runs the shared suite in
// storage/storagetest.
package storage
