-- name: ConfigVersionRecent :many
-- The ids of the stored configuration versions, the one a `run` process
-- loaded last first, then those never loaded (replay --config), newest first.
SELECT id FROM observer_config_versions ORDER BY loaded_at DESC NULLS LAST, id DESC LIMIT @max_rows;

-- name: SkippedEventsByChange :many
-- Why the listener skipped changes (their pks), oldest record first.
SELECT listener_id, change_pk, reason, created_at
FROM observer_skipped_events
WHERE change_pk = ANY(@change_pks::bigint[])
ORDER BY id;

-- name: DedupKeyGet :one
-- A claimed content key: whether it has a row, and whether it is still held
-- (within its window) until when.
SELECT count(*) > 0 AS found,
       COALESCE(bool_or(expires_at > clock_timestamp()), false)::boolean AS held,
       COALESCE(max(expires_at), 'epoch')::timestamptz AS expires_at -- the epoch when not found
FROM observer_dedup_keys
WHERE key = @key;

-- name: CacheEntriesByPrefix :many
-- The live result-cache entries whose key starts with prefix.
SELECT key, value, expires_at
FROM observer_cache
WHERE left(key, length(@prefix::text)) = @prefix::text AND expires_at > clock_timestamp()
ORDER BY key
LIMIT @max_rows;

-- name: CheckpointPosition :one
-- The listener's checkpoint (found is false when it has never run) and the
-- committed horizon: changes of a transaction at or above it may still be
-- invisible to the listener.
WITH cp AS (SELECT txid, event_id FROM observer_checkpoints WHERE listener_id = @listener_id)
SELECT EXISTS (SELECT 1 FROM cp) AS found,
       COALESCE((SELECT txid::text::bigint FROM cp), 0)::bigint AS txid,
       COALESCE((SELECT event_id FROM cp), 0)::bigint AS event_id,
       pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon;
