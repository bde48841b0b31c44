-- The audit trail's outbox: records the audit backend could not take yet
-- (it was down, or refused some items for a reason that may pass), kept
-- here until observers/audit's drainer writes them. Several instances drain
-- it together (FOR UPDATE SKIP LOCKED); a row is deleted once written.
-- record is the storage.AuditRecord as JSON; attempts counts the failed
-- writes; next_at is when the row may be tried again; last_error is the
-- last failure (no credentials: errors are redacted before they get here).

-- +goose Up
CREATE TABLE IF NOT EXISTS observer_audit_outbox (
    id         bigserial PRIMARY KEY,
    record     jsonb       NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    next_at    timestamptz NOT NULL DEFAULT now(),
    last_error text
);

CREATE INDEX IF NOT EXISTS observer_audit_outbox_next_at ON observer_audit_outbox (next_at, id);

-- +goose Down
DROP TABLE IF EXISTS observer_audit_outbox;
