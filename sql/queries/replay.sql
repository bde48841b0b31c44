-- name: ReplayCreate :one
-- A new replay; nothing when an unfinished one has the same key.
INSERT INTO observer_replays (listener_id, key, parameters, config_version, bound_txid, bound_pk,
                              position_txid, position_pk, total, counts, state)
VALUES (@listener_id, @key, @parameters, @config_version, @bound_txid, @bound_pk,
        @position_txid, @position_pk, @total, @counts, 'running')
ON CONFLICT (key) WHERE state = 'running' DO NOTHING
RETURNING id;

-- name: ReplayFindRunning :one
SELECT id FROM observer_replays WHERE key = @key AND state = 'running';

-- name: ReplayGet :one
SELECT * FROM observer_replays WHERE id = @id;

-- name: ReplayLock :one
-- Locks the replay's row for one batch's transaction.
SELECT * FROM observer_replays WHERE id = @id FOR UPDATE;

-- name: ReplayAdvance :exec
UPDATE observer_replays
SET position_txid = @position_txid,
    position_pk = @position_pk,
    counts = @counts,
    state = @state,
    updated_at = now(),
    finished_at = CASE WHEN @state::text = 'running' THEN NULL ELSE now() END
WHERE id = @id;

-- name: ReplayCancel :execrows
UPDATE observer_replays
SET state = 'cancelled', updated_at = now(), finished_at = now()
WHERE id = @id AND state = 'running';

-- name: ReplayList :many
-- The latest replays, newest first; active is true while a process runs it
-- (holds its advisory lock: classid @lock_class, objid the id).
SELECT sqlc.embed(r),
       EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted
                 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
                 AND l.classid::bigint = @lock_class::bigint AND l.objid::bigint = r.id AND l.objsubid = 2) AS active
FROM observer_replays r
ORDER BY r.id DESC
LIMIT @max_rows;

-- name: ReplayLiveInstances :one
-- Instances of any listener group whose heartbeat is younger than
-- @within_seconds: their workers deliver the replayed jobs.
SELECT count(*) FROM observer_listeners
WHERE heartbeat_at > now() - make_interval(secs => @within_seconds::float8);
