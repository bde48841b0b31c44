// Package resultcache is the result cache of webhook and Slack deliveries:
// a successful request is remembered for cache.ttl under a key its action
// type computes from the rendered request, and an identical request within
// the TTL is not sent again. It also owns the cache metrics
// (observer_cache_*).
package resultcache
