-- The observer's own bookkeeping tables.

-- +goose Up

-- observer_listeners: one row per running instance, refreshed by heartbeat;
-- read by `status`.
CREATE TABLE IF NOT EXISTS observer_listeners (
    id text PRIMARY KEY, -- instance id
    listener_id text NOT NULL,
    host text,
    pid int,
    http_addr text,
    role text NOT NULL CHECK (role IN ('leader', 'standby')),
    version text,
    started_at timestamptz,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    leader_since timestamptz
);
CREATE INDEX IF NOT EXISTS observer_listeners_listener_id_idx ON observer_listeners (listener_id);

-- observer_config_versions: each loaded configuration, stored once and never
-- changed; jobs reference it by id.
CREATE TABLE IF NOT EXISTS observer_config_versions (
    id bigserial PRIMARY KEY,
    hash text NOT NULL UNIQUE,
    source text NOT NULL, -- raw YAML
    created_at timestamptz DEFAULT now()
);

-- observer_skipped_events: changes the pipeline could not process (unknown
-- modification_type, bad JSON), recorded instead of blocking the log.
CREATE TABLE IF NOT EXISTS observer_skipped_events (
    id bigserial PRIMARY KEY,
    listener_id text,
    change_pk bigint,
    reason text,
    created_at timestamptz DEFAULT now()
);
CREATE INDEX IF NOT EXISTS observer_skipped_events_listener_id_idx
    ON observer_skipped_events (listener_id, id);

-- +goose Down
DROP TABLE IF EXISTS observer_skipped_events;
DROP TABLE IF EXISTS observer_config_versions;
DROP TABLE IF EXISTS observer_listeners;
