-- observers.track(table) makes a user table's row changes land in
-- core.tb_entity_change_log; observers.untrack(table) stops it.

-- +goose Up

-- observers.log_change is the row trigger that observers.track attaches. Its
-- arguments name the columns whose values form object_id (the table's id
-- column, else its primary key); several are joined with ','.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_new jsonb;
    v_old jsonb;
    v_src jsonb;
    v_id text;
    v_fields text[];
BEGIN
    IF TG_OP <> 'DELETE' THEN
        v_new := to_jsonb(NEW);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        v_old := to_jsonb(OLD);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- jsonb equality works for every column type, unlike record equality.
        IF v_new = v_old THEN
            RETURN NULL;
        END IF;
        SELECT array_agg(n.key ORDER BY n.key) INTO v_fields
        FROM jsonb_each(v_new) AS n
        WHERE n.value IS DISTINCT FROM v_old -> n.key;
    END IF;
    v_src := COALESCE(v_new, v_old);
    IF TG_NARGS = 1 THEN
        v_id := v_src ->> TG_ARGV[0];
    ELSE
        SELECT string_agg(v_src ->> a.col, ',' ORDER BY a.ord) INTO v_id
        FROM unnest(TG_ARGV) WITH ORDINALITY AS a(col, ord);
    END IF;
    -- jsonb_populate_record converts through each column's input function, so
    -- this also works on a FraiseQL table whose object_id is uuid or bigint.
    INSERT INTO core.tb_entity_change_log
        (object_type, object_id, modification_type, object_data, object_data_before, updated_fields)
    SELECT r.object_type, r.object_id, r.modification_type, v_new, v_old, v_fields
    FROM jsonb_populate_record(NULL::core.tb_entity_change_log, jsonb_build_object(
        'object_type', TG_TABLE_NAME,
        'object_id', v_id,
        'modification_type', TG_OP)) AS r;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.track(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_cols text[];
BEGIN
    IF tbl = 'core.tb_entity_change_log'::regclass THEN
        RAISE EXCEPTION 'observers.track: % is the change log itself', tbl;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = tbl AND attname = 'id' AND attnum > 0 AND NOT attisdropped
    ) THEN
        v_cols := ARRAY['id'];
    ELSE
        SELECT array_agg(a.attname::text ORDER BY k.ord) INTO v_cols
        FROM pg_index AS i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = tbl AND i.indisprimary;
    END IF;
    IF v_cols IS NULL THEN
        RAISE EXCEPTION 'observers.track: % has neither an id column nor a primary key', tbl
            USING HINT = 'add a primary key to the table';
    END IF;
    -- Replace rather than skip, so that a changed primary key is picked up.
    IF EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = tbl AND tgname = 'observers_track' AND NOT tgisinternal
    ) THEN
        EXECUTE format('DROP TRIGGER observers_track ON %s', tbl);
    END IF;
    EXECUTE format(
        'CREATE TRIGGER observers_track AFTER INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION observers.log_change(%s)',
        tbl, (SELECT string_agg(quote_literal(c), ', ') FROM unnest(v_cols) AS c));
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgrelid = tbl AND tgname = 'observers_track' AND NOT tgisinternal
    ) THEN
        EXECUTE format('DROP TRIGGER observers_track ON %s', tbl);
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS observers.untrack(regclass);
DROP FUNCTION IF EXISTS observers.track(regclass);
DROP FUNCTION IF EXISTS observers.log_change() CASCADE;
