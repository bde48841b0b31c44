-- name: CheckpointEnsure :exec
INSERT INTO observer_checkpoints (listener_id)
VALUES (@listener_id)
ON CONFLICT (listener_id) DO NOTHING;

-- name: CheckpointLock :one
-- txid travels as bigint through text casts in every query here, so callers
-- handle plain int64 (real txids, epoch << 32 | xid, fit).
-- Locks the listener's checkpoint row for the enqueue transaction; a leader
-- that lost its lock without knowing blocks here and then sees the new
-- position.
SELECT txid::text::bigint AS txid, event_id
FROM observer_checkpoints
WHERE listener_id = @listener_id
FOR UPDATE;

-- name: CheckpointAdvance :execrows
UPDATE observer_checkpoints
SET txid = (@txid::bigint)::text::xid8,
    event_id = @event_id,
    events_processed = events_processed + @events_processed_delta::bigint,
    last_processed_at = now(),
    updated_at = now()
WHERE listener_id = @listener_id;

-- name: CheckpointGet :one
SELECT id,
       listener_id::text AS listener_id,
       txid::text::bigint AS txid,
       event_id,
       COALESCE(last_processed_at, updated_at, now())::timestamptz AS last_processed_at, -- nullable in FraiseQL's table
       created_at,
       updated_at,
       events_processed
FROM observer_checkpoints
WHERE listener_id = @listener_id;

-- name: CheckpointSetChangeLog :exec
-- Records the table the group reads, schema-qualified and quoted as
-- format('%I.%I') writes it; NULL when the table does not exist.
UPDATE observer_checkpoints
SET change_log = (
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = to_regclass(@change_log::text)
)
WHERE listener_id = @listener_id;
