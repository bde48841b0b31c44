-- Wake listeners: one NOTIFY per INSERT statement on a change-log table,
-- delivered by Postgres when the writing transaction commits.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS observers;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fraiseql_observers', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- observers.attach_notify attaches the notify trigger to a change-log table
-- (listener.table is configurable). Calling it again keeps one trigger.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.attach_notify(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = tbl AND tgname = 'observers_notify' AND NOT tgisinternal
    ) THEN
        EXECUTE format(
            'CREATE TRIGGER observers_notify AFTER INSERT ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION observers.notify_change()', tbl);
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
BEGIN
    PERFORM observers.attach_notify('core.tb_entity_change_log'::regclass);
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER IF EXISTS observers_notify ON core.tb_entity_change_log;
DROP FUNCTION IF EXISTS observers.attach_notify(regclass);
DROP FUNCTION IF EXISTS observers.notify_change();
