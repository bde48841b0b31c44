// Package storagetest is the shared test suite of the storage interfaces:
// every implementation (Postgres, Redis, Redis on miniredis) runs the same
// tests from its own _test.go file, e.g.
//
//	storagetest.RunCache(t, storagetest.CacheHarness{New: ...})
//
// Dedup claims need a Postgres transaction, so RunDedup gives each test its
// own migrated database (sql/sqltest).
package storagetest
