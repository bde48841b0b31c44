package sqltest

// FraiseQLSchema is the shape of a database where FraiseQL already ran, before
// our migrations: a change log with a uuid object_id, uuid/bigint foreign
// keys and no txid, change_status, object_data_before, updated_fields or
// tenant_id columns; and FraiseQL's own observer_checkpoints keyed by
// last_processed_id. Compatibility tests create it in an empty database,
// insert rows, then migrate.
const FraiseQLSchema = `
CREATE SCHEMA core;
CREATE TABLE core.tb_entity_change_log (
    pk_entity_change_log bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    fk_customer_org uuid,
    fk_contact bigint,
    object_type text NOT NULL,
    object_id uuid NOT NULL,
    modification_type text NOT NULL,
    object_data jsonb,
    extra_metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE observer_checkpoints (
    listener_id text UNIQUE,
    last_processed_id bigint NOT NULL,
    last_processed_at timestamptz
);
`
