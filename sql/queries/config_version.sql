-- name: ConfigVersionUpsert :one
-- Stores a configuration once; the same hash returns the existing id.
INSERT INTO observer_config_versions (hash, source)
VALUES (@hash, @source)
ON CONFLICT (hash) DO UPDATE SET hash = EXCLUDED.hash
RETURNING id;

-- name: ConfigVersionGet :one
SELECT hash, source FROM observer_config_versions WHERE id = @id;

-- name: ConfigVersionLatest :one
-- The configuration stored last (the newest a `run` process loaded).
SELECT id, source, created_at FROM observer_config_versions ORDER BY id DESC LIMIT 1;
