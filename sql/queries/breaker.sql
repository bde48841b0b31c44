-- name: BreakerLockAcquire :one
-- Takes the lease when it is free or expired; no row when another owner
-- holds it.
INSERT INTO observer_circuit_breaker_locks AS l (name, owner, expires_at)
VALUES (@name, @owner, now() + make_interval(secs => @lease_seconds::float8))
ON CONFLICT (name) DO UPDATE
SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE l.expires_at < now()
RETURNING owner;

-- name: BreakerLockRelease :execrows
DELETE FROM observer_circuit_breaker_locks
WHERE name = @name AND owner = @owner;

-- name: BreakerGet :one
SELECT data FROM observer_circuit_breakers WHERE name = @name;

-- name: BreakerSet :exec
INSERT INTO observer_circuit_breakers AS b (name, state, expiry, counts, data, updated_at)
VALUES (@name, @state, sqlc.narg('expiry'), sqlc.narg('counts'), @data, now())
ON CONFLICT (name) DO UPDATE
SET state = EXCLUDED.state,
    expiry = EXCLUDED.expiry,
    counts = EXCLUDED.counts,
    data = EXCLUDED.data,
    updated_at = now();

-- name: BreakerList :many
SELECT name, state, expiry, counts, updated_at
FROM observer_circuit_breakers
ORDER BY name;

-- name: BreakerCleanupStates :execrows
-- Deletes breakers idle for a day that are not open: their sample (one
-- window) has long passed, so a fresh closed breaker is the same. Among
-- them are the host-named rows migration 00013 kept open, once expired.
DELETE FROM observer_circuit_breakers
WHERE updated_at < now() - interval '1 day'
  AND NOT (state = 'open' AND expiry > now());

-- name: BreakerCleanupLocks :execrows
-- Deletes leases that ran out a minute ago or more.
DELETE FROM observer_circuit_breaker_locks
WHERE expires_at < now() - interval '1 minute';
