-- name: SearchIndex :exec
-- Stores the document under (index, id), replacing any document there. An
-- invalid JSON document fails with SQL state 22P02.
INSERT INTO observer_search_documents ("index", id, doc, updated_at)
VALUES (@index, @id, @doc, now())
ON CONFLICT ("index", id) DO UPDATE
SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at;

-- name: SearchDelete :exec
-- An absent document is not an error.
DELETE FROM observer_search_documents WHERE "index" = @index AND id = @id;

-- name: SearchGet :one
SELECT doc FROM observer_search_documents WHERE "index" = @index AND id = @id;
