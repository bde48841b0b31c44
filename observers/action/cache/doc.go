// Package cache is the cache action type (type: cache): the application's
// cache keys a key_pattern names, with the event's values glob-escaped,
// deleted in the Redis of the redis: block (storage.Invalidator).
package cache
