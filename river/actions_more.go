package river

import (
	"context"
	"log/slog"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// cache invalidates the keys the action's key_pattern names in the Redis of
// the redis: block (the client shared with the storage layers). Redis errors
// are transient.
func (w *ActionWorker) cache(ctx context.Context, o *observers.Observer, idx int, ev *observers.Event) error {
	if w.redis == nil {
		return permanent(errors.WithHint(errors.New("cache action: no Redis client"),
			"set a top-level redis: {url: …}; it is read at start"))
	}
	pattern, err := o.Actions[idx].Cache.Pattern(ev)
	if err != nil {
		return permanent(err)
	}
	n, err := observers.InvalidateCache(ctx, w.redis, pattern)
	if err != nil {
		return err
	}
	w.logger.DebugContext(ctx, "worker: cache keys invalidated", slog.String("observer", o.Name),
		slog.Int64("event_seq", ev.Seq), slog.String("pattern", pattern), slog.Int64("deleted", n))
	return nil
}

// search indexes the entity's document (or deletes it on a DELETE event)
// through the search store. Errors the backend marks storage.ErrRejected
// are permanent; the others transient.
func (w *ActionWorker) search(ctx context.Context, o *observers.Observer, idx int, ev *observers.Event) error {
	if w.searchStore == nil {
		return permanent(errors.New("search action: no search store"))
	}
	sa := o.Actions[idx].Search
	index := sa.IndexName(ev)
	if index == "" || ev.EntityID == "" {
		return permanent(errors.Newf("search action: event %d has no entity type or id to name the document", ev.Seq))
	}
	var err error
	if ev.Kind == observers.KindDelete {
		err = w.searchStore.Delete(ctx, index, ev.EntityID)
	} else {
		var doc []byte
		if doc, err = sa.Document(ev); err != nil {
			return permanent(err)
		}
		err = w.searchStore.Index(ctx, index, ev.EntityID, doc)
	}
	if err == nil {
		return nil
	}
	return &observers.DeliveryError{Permanent: errors.Is(err, storage.ErrRejected), Err: err}
}
