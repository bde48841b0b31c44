-- name: RateLimitTake :one
-- Takes one token of the endpoint's bucket: wait_seconds is 0 when taken,
-- else how long the request should wait (observers.rate_limit_take).
SELECT EXTRACT(EPOCH FROM observers.rate_limit_take(@name::text,
    make_interval(secs => @interval_seconds::float8), @burst::integer))::float8 AS wait_seconds;

-- name: RateLimitCleanup :execrows
-- Deletes the buckets that are full again and have no wait line: they hold
-- nothing a fresh row would not.
DELETE FROM observer_rate_limits
WHERE tat < now() - interval '1 minute' AND queue_until < now() - interval '1 minute';
