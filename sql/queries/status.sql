-- Read-only queries behind `fraiseql-observers status`.

-- name: StatusListenerIDs :many
-- Listener groups in creation order; status defaults to the first.
SELECT listener_id::text AS listener_id
FROM observer_checkpoints
WHERE listener_id IS NOT NULL
ORDER BY id
LIMIT 100;

-- name: StatusInstances :many
-- Instances of a listener group whose last heartbeat is newer than
-- @omit_after_seconds (older rows are left by killed processes and hidden),
-- with their heartbeat age by the database's clock.
SELECT id,
       host,
       pid,
       http_addr,
       role,
       version,
       started_at,
       heartbeat_at,
       leader_since,
       EXTRACT(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_seconds,
       batch_failures,
       batch_error,
       progress_at
FROM observer_listeners
WHERE listener_id = @listener_id
  AND heartbeat_at > now() - make_interval(secs => @omit_after_seconds::float8)
ORDER BY role = 'leader' DESC, heartbeat_at DESC, id;

-- name: StatusHorizonBlocker :many
-- The backend running the oldest transaction that has an xid: it is the
-- xmin of every new snapshot, so the listener reads nothing written after
-- it began until it ends. Transaction ids are cluster-wide, so a backend of
-- another database holds the horizon back too. Backends with only a snapshot
-- (backend_xmin, no xid) do not move pg_snapshot_xmin and are not listed.
-- Without pg_read_all_stats, other roles' backends show no xid.
SELECT pid,
       COALESCE(datname::text, '')::text AS database,
       COALESCE(usename::text, '')::text AS username,
       xact_start,
       query_start,
       COALESCE(state, '')::text AS state,
       COALESCE(left(query, 200), '')::text AS query,
       COALESCE(EXTRACT(epoch FROM now() - xact_start), 0)::float8 AS age_seconds
FROM pg_catalog.pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC
LIMIT 1;

-- name: StatusNow :one
-- The database's clock, the time a status report is taken at.
SELECT now()::timestamptz AS now;

-- name: StatusCircuitBreakers :many
-- Circuit breakers by name; open is true while a breaker rejects requests:
-- its state is open and its expiry (when it may half-open) has not passed.
SELECT name,
       state,
       expiry,
       (lower(state) = 'open' AND (expiry IS NULL OR expiry > now()))::boolean AS open
FROM observer_circuit_breakers
ORDER BY name;

-- name: StatusRelationExists :one
-- Whether a table (or other relation) of this name is visible, without an
-- error when it is not: status reports a missing change log instead of
-- failing.
SELECT (to_regclass(sqlc.arg(name)::text) IS NOT NULL)::boolean AS exists;

-- name: StatusInstanceQueues :many
-- The River queues (name → max workers) of every instance, of any listener
-- group (River's queues are the database's), whose heartbeat is younger
-- than @healthy_seconds; queues is NULL for an instance of a version that
-- did not record them.
SELECT id, queues
FROM observer_listeners
WHERE heartbeat_at > now() - make_interval(secs => @healthy_seconds::float8)
ORDER BY id;
