-- Reload on table change: FraiseQL's tb_observer table (observers_table:)
-- notifies 'fraiseql_observers_config' once per writing statement, delivered
-- when the transaction commits; `run` reloads its configuration.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.notify_config() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fraiseql_observers_config', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- observers.attach_config_notify attaches the trigger to an observers table;
-- `run` calls it at start. Calling it again keeps one trigger.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.attach_config_notify(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = tbl AND tgname = 'observers_config_notify' AND NOT tgisinternal
    ) THEN
        EXECUTE format(
            'CREATE TRIGGER observers_config_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION observers.notify_config()', tbl);
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS observers.attach_config_notify(regclass);
DROP FUNCTION IF EXISTS observers.notify_config() CASCADE;
