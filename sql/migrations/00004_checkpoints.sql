-- observer_checkpoints: one row per listener group, the (txid, pk) position of
-- the last change delivered. FraiseQL may already have a table of this name
-- (listener_id, last_processed_id, last_processed_at, ...): it is extended,
-- and a listener resumes after FraiseQL's position.

-- +goose Up
CREATE TABLE IF NOT EXISTS observer_checkpoints (
    id bigserial PRIMARY KEY,
    listener_id varchar(255) NOT NULL UNIQUE,
    -- pk_entity_change_log of the last processed change.
    event_id bigint NOT NULL DEFAULT 0,
    -- Transaction of that change; 0 sorts before every txid.
    txid xid8 NOT NULL DEFAULT '0',
    last_processed_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    events_processed bigint NOT NULL DEFAULT 0
);

ALTER TABLE observer_checkpoints
    ADD COLUMN IF NOT EXISTS event_id bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT '0',
    ADD COLUMN IF NOT EXISTS last_processed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS created_at timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS events_processed bigint NOT NULL DEFAULT 0;

-- +goose StatementBegin
DO $$
DECLARE
    v_rel regclass := 'observer_checkpoints'::regclass;
BEGIN
    -- id: add it when FraiseQL's table has none; it becomes the primary key
    -- only if the table has no primary key yet.
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = v_rel AND attname = 'id' AND attnum > 0 AND NOT attisdropped
    ) THEN
        ALTER TABLE observer_checkpoints ADD COLUMN id bigserial;
        IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = v_rel AND indisprimary) THEN
            ALTER TABLE observer_checkpoints ADD PRIMARY KEY (id);
        END IF;
    END IF;

    -- ON CONFLICT (listener_id) needs a unique index on exactly listener_id.
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index AS i
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attname = 'listener_id'
        WHERE i.indrelid = v_rel AND i.indisunique AND i.indpred IS NULL
          AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum
    ) THEN
        CREATE UNIQUE INDEX observer_checkpoints_listener_id_key
            ON observer_checkpoints (listener_id);
    END IF;

    -- FraiseQL's position: resume after it.
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'observer_checkpoints'
          AND column_name = 'last_processed_id'
    ) THEN
        UPDATE observer_checkpoints
        SET event_id = last_processed_id
        WHERE event_id = 0 AND last_processed_id IS NOT NULL;
        -- New rows are inserted by the observer, which does not know the column.
        IF EXISTS (
            SELECT 1 FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = 'observer_checkpoints'
              AND column_name = 'last_processed_id' AND is_nullable = 'NO'
              AND column_default IS NULL
        ) THEN
            ALTER TABLE observer_checkpoints ALTER COLUMN last_processed_id SET DEFAULT 0;
        END IF;
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- The table may be FraiseQL's: only the observer's own columns are removed.
ALTER TABLE observer_checkpoints
    DROP COLUMN IF EXISTS event_id,
    DROP COLUMN IF EXISTS txid,
    DROP COLUMN IF EXISTS events_processed;
