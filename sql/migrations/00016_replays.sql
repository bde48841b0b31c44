-- `fraiseql-observers replay`: past changes run through the observers again.
-- Each replay is one row: what it selects, how far it got (its position in
-- the change log's (txid, pk) order), what it did so far. Every batch moves
-- the position in the transaction that enqueues the batch's jobs, so an
-- interrupted replay resumes where it stopped without enqueueing anything
-- twice.
--
--   SELECT id, state, position_pk, counts FROM observer_replays ORDER BY id DESC;

-- +goose Up
CREATE TABLE IF NOT EXISTS observer_replays (
    id bigserial PRIMARY KEY,
    listener_id text NOT NULL,
    -- The command's selection as the operator gave it (--from 24h stays
    -- "24h"): the same command resumes an unfinished replay with this key.
    key text NOT NULL,
    -- The selection resolved when the replay started (times, observers,
    -- entity types), the configuration version its jobs name, and the
    -- listener's checkpoint then: nothing after it is replayed.
    parameters jsonb NOT NULL,
    config_version bigint NOT NULL,
    bound_txid bigint NOT NULL,
    bound_pk bigint NOT NULL,
    -- The last change read, in (txid, pk) order.
    position_txid bigint NOT NULL,
    position_pk bigint NOT NULL,
    -- Changes selected when the replay started (for progress).
    total bigint NOT NULL,
    -- events_read, events_matched, events_skipped, deliveries, by observer.
    counts jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL CHECK (state IN ('running', 'finished', 'cancelled')),
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- At most one unfinished replay per selection: the same command resumes it.
CREATE UNIQUE INDEX IF NOT EXISTS observer_replays_running_key_idx
    ON observer_replays (key) WHERE state = 'running';

-- When a `run` process last loaded each configuration version (start or
-- reload): the most recent one is what the running daemon uses, which is
-- also the version replay runs the changes through. A version stored by
-- `replay --config` alone keeps NULL.
ALTER TABLE observer_config_versions ADD COLUMN IF NOT EXISTS loaded_at timestamptz;
-- Versions stored before: the latest created stands for the one in use
-- until a `run` process starts or reloads.
UPDATE observer_config_versions SET loaded_at = created_at WHERE loaded_at IS NULL;

-- +goose Down
ALTER TABLE observer_config_versions DROP COLUMN IF EXISTS loaded_at;
DROP TABLE IF EXISTS observer_replays;
