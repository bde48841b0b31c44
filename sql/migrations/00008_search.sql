-- Documents of the search action's Postgres backend (the default until a
-- search engine backend is configured).

-- +goose Up

-- observer_search_documents: one JSON document per (index, id), replaced by
-- each INSERT or UPDATE event of the entity and deleted by its DELETE.
CREATE TABLE IF NOT EXISTS observer_search_documents (
    "index" text NOT NULL,
    id text NOT NULL,
    doc jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("index", id)
);

-- +goose Down
DROP TABLE IF EXISTS observer_search_documents;
