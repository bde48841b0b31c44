-- name: CacheGet :one
SELECT value FROM observer_cache
WHERE key = @key AND expires_at > clock_timestamp();

-- name: CacheSet :exec
INSERT INTO observer_cache AS c (key, value, expires_at)
VALUES (@key, @value, clock_timestamp() + make_interval(secs => @ttl_seconds::float8))
ON CONFLICT (key) DO UPDATE
SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;

-- name: CacheSetNX :execrows
-- Stores the value only when the key is absent or expired. Concurrent calls
-- on one key serialize on its primary key: exactly one affects a row.
INSERT INTO observer_cache AS c (key, value, expires_at)
VALUES (@key, @value, clock_timestamp() + make_interval(secs => @ttl_seconds::float8))
ON CONFLICT (key) DO UPDATE
SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
WHERE c.expires_at <= clock_timestamp();

-- name: CacheDelete :execrows
DELETE FROM observer_cache WHERE key = ANY(@keys::text[]);

-- name: CacheCleanup :execrows
DELETE FROM observer_cache WHERE expires_at <= now();
