// Package storage holds the small interfaces behind which the observer keeps
// state that may live outside Postgres. Each has a Postgres implementation
// (storage/postgres, the default); Redis ones are chosen by configuration.
package storage

import "github.com/cockroachdb/errors"

// ErrLocked is returned by BreakerStore.Lock when another holder has the lock.
var ErrLocked = errors.New("storage: locked by another holder")

// BreakerStore shares circuit-breaker state between instances. Its method
// set is gobreaker's SharedDataStore (github.com/sony/gobreaker/v2), so any
// store written for gobreaker fits, and a BreakerStore can be handed to
// gobreaker.NewDistributedCircuitBreaker as is.
//
// gobreaker names its keys "gobreaker:mutex:NAME" (Lock, Unlock) and
// "gobreaker:state:NAME" (GetData, SetData); a store may map both to NAME.
// Calls take no context: each bounds itself with its own timeout.
type BreakerStore interface {
	// Lock takes the lock named key without waiting: ErrLocked (possibly
	// wrapped) when another holder has it. A lock whose holder dies is freed
	// after a bounded time (a lease), never held for ever.
	Lock(key string) error
	// Unlock releases a lock taken by this store; releasing a lock that was
	// lost (its lease expired) is not an error.
	Unlock(key string) error
	// GetData returns the value stored under key, or nil and no error when
	// there is none.
	GetData(key string) ([]byte, error)
	// SetData stores data (gobreaker's JSON-encoded SharedState) under key.
	SetData(key string, data []byte) error
}
