package changelog

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Found is one change-log row read by Find or Recent: the event, decoded as
// the listener decodes it (without the size limit), or, for a row the
// listener cannot decode, its identifying fields and the Reason.
type Found struct {
	Event  *observers.Event
	Reason string // why the row cannot be decoded; "" when it can
	Before []byte // object_data_before as stored (Event.Before decoded loses big integers' digits)
}

// ErrBadKey is returned by Find for a key that is neither a pk nor a uuid.
var ErrBadKey = errors.New("not a change pk (a number) or id (a uuid)")

// Find reads the row whose pk_entity_change_log or id (uuid) is key. A key
// of digits is a pk; anything else must be a uuid (ErrBadKey otherwise). A
// missing row wraps storage.ErrNotFound. A uuid is looked up without an
// index unless the table has one on id.
func (c *ChangeLog) Find(ctx context.Context, q observers.Querier, key string) (Found, error) {
	key = strings.TrimSpace(key)
	where, arg := "", any(nil)
	if pk, err := strconv.ParseInt(key, 10, 64); err == nil {
		where, arg = "pk_entity_change_log = $1", pk
	} else {
		var u pgtype.UUID
		if err := u.Scan(key); err != nil {
			return Found{}, errors.Wrapf(ErrBadKey, "%q", key)
		}
		where, arg = "id = $1::uuid", u
	}
	got, err := c.lookup(ctx, q, where+" LIMIT 1", arg)
	if err != nil {
		return Found{}, err
	}
	if len(got) == 0 {
		return Found{}, errors.Wrapf(storage.ErrNotFound, "change %s in %s", key, c.table)
	}
	return got[0], nil
}

// Recent reads the last n rows (highest pk first) of entity type entity
// ("" for any) whose modification_type, trimmed and upper case, is one of
// kinds (Kind.Spellings; none for any).
func (c *ChangeLog) Recent(ctx context.Context, q observers.Querier, entity string, kinds []string, n int) ([]Found, error) {
	return c.lookup(ctx, q, `($1 = '' OR object_type = $1)
  AND (COALESCE(cardinality($2::text[]), 0) = 0 OR upper(btrim(modification_type)) = ANY($2::text[]))
ORDER BY pk_entity_change_log DESC LIMIT $3`, entity, kinds, n)
}

// SameEntity reads up to n rows of one entity (type and id) created
// between from and to, oldest first: the candidates for a change with the
// same content (observers.DedupKey).
func (c *ChangeLog) SameEntity(ctx context.Context, q observers.Querier, entityType, entityID string, from, to time.Time, n int) ([]Found, error) {
	return c.lookup(ctx, q, `object_type = $1 AND object_id::text = $2 AND created_at BETWEEN $3 AND $4
ORDER BY COALESCE(txid, '0'::xid8), pk_entity_change_log LIMIT $5`, entityType, entityID, from, to, n)
}

// lookup reads the rows matching where (with args), in its order.
func (c *ChangeLog) lookup(ctx context.Context, q observers.Querier, where string, args ...any) ([]Found, error) {
	var out []Found
	err := c.eachRow(ctx, q, `SELECT `+changeLogColumns+`, 0::bigint, 0::bigint FROM `+c.quoted+` WHERE `+where, args,
		func(r row, ev *observers.Event, reason string) {
			f := Found{Event: ev, Reason: reason}
			if r.before != nil {
				f.Before = []byte(*r.before)
			}
			out = append(out, f)
		})
	return out, err
}
