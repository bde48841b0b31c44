-- name: DedupClaim :many
-- Claims every key (distinct) for the window in one statement; returns the
-- keys that were fresh: absent, or present but expired. A key another open
-- transaction is claiming waits for it, then is fresh only if that one
-- rolled back.
INSERT INTO observer_dedup_keys AS d (key, expires_at)
SELECT k, clock_timestamp() + make_interval(secs => @window_seconds::float8)
FROM unnest(@keys::text[]) AS k
ON CONFLICT (key) DO UPDATE
SET expires_at = EXCLUDED.expires_at
WHERE d.expires_at <= clock_timestamp()
RETURNING key;

-- name: DedupCleanup :execrows
DELETE FROM observer_dedup_keys WHERE expires_at <= now();

-- name: DedupTokenCommit :exec
-- Records the enqueue transaction's token; it becomes visible, and the
-- transaction's Redis claims count, only when the transaction commits. A
-- tombstone of the same token (a reader judged it void) makes this fail.
INSERT INTO observer_dedup_tokens (token, committed) VALUES (@token, true);

-- name: DedupTokenTombstone :many
-- Marks tokens that have no row as void; returns those it marked. Waits for
-- an open transaction that inserted one of them.
INSERT INTO observer_dedup_tokens (token, committed)
SELECT t, false FROM unnest(@tokens::text[]) AS t
ON CONFLICT (token) DO NOTHING
RETURNING token;

-- name: DedupTokenCommitted :many
SELECT token FROM observer_dedup_tokens
WHERE token = ANY(@tokens::text[]) AND committed;

-- name: DedupTokenCleanup :execrows
DELETE FROM observer_dedup_tokens
WHERE created_at < now() - make_interval(secs => @older_than_seconds::float8);
