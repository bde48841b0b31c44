// Package redis implements the storage interfaces on Redis (go-redis v9):
// Dedup, Cache, BreakerStore and the Invalidator of cache actions. One
// client, made by NewClient from the configuration's redis.url, is shared by
// every Redis-backed layer. Its errors are marked storage.ErrUnavailable.
package redis
