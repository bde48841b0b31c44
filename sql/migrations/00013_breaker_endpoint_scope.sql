-- Circuit breakers are named by endpoint URL since circuit_breaker.scope
-- (scheme://host:port/path, the new default), or by host with scope: host
-- (scheme://host:port, the only naming before). A row's name says which: a
-- host name has no path.
--
-- What becomes of the rows named by host:
--   * An open one whose open period has not run out is kept. With scope:
--     host it still guards its host (no burst of requests to a host that was
--     failing at the upgrade), and `status` keeps showing the outage until
--     it ends. The default scope never reads it: the failing path's own
--     breaker opens again after min_requests failures, a few requests later.
--   * Every other one (closed, half-open, open and expired) is deleted. Its
--     state is a rolling sample of at most one window (default 60s) that the
--     breaker rebuilds from the next requests, so scope: host loses nothing
--     that matters; with the default scope it would never be read again and
--     `status` would list a breaker that no longer exists, for ever.
--   * A kept row that the default scope never reads again goes with the
--     periodic cleanup (BreakerStore.Cleanup: breakers idle for a day that
--     are not open), once its open period has run out.
-- Nothing is copied to endpoint names: a host's sample cannot be split by
-- path. Locks are short leases and expire by themselves. Redis-backed state
-- (circuit_breaker.backend: redis) is not migrated: the same rule holds for
-- its keys, which the old names no longer reach unless scope: host.

-- +goose Up
DELETE FROM observer_circuit_breakers
WHERE name !~ '^[^:/]+://[^/]+/'
  AND NOT (state = 'open' AND expiry > now());

-- +goose Down
-- An older version reads only host names: the endpoint-named rows are of no
-- use to it, and `status` would list them. Deleted host rows are not
-- restored; their breakers start closed.
DELETE FROM observer_circuit_breakers WHERE name ~ '^[^:/]+://[^/]+/';
