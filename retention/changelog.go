package retention

import (
	"context"
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"
)

// The change log is walked in the reader's order, (COALESCE(txid, 0), pk),
// on the index migration 00001 made for the listener: BatchRows rows at a
// time from a cursor, never past the checkpoint of the listener group
// furthest behind among those reading the table. Each statement reads that
// checkpoint, the pins and the rows in one snapshot and deletes the rows
// that are old enough and not pinned.
//
// Rows are old in roughly that order (created_at is the writing
// transaction's start), so the walk stops at the first BatchRows rows of
// which none is old enough: a row written out of order (an old created_at
// given explicitly, a transaction open for long) goes when the rows around
// it do — later than its period, never earlier.

// changeLogSQL is one batch on table (quoted): $1, $2 the cursor (txid
// text, pk), $3 the rows to read, $4 the cutoff, $5 the table as
// observer_checkpoints.change_log names it. It returns the rows read, how
// many were old, how many went (or would go), the last row read, and the
// bounding checkpoint's group and position.
func changeLogSQL(table string, pins []Pin, dryRun bool) string {
	var pinned []string
	for _, p := range pins {
		pinned = append(pinned, "("+p.Seqs(table)+")")
	}
	if len(pinned) == 0 {
		pinned = []string{"SELECT NULL::bigint AS seq WHERE false"}
	}
	gone := `DELETE FROM ` + table + ` c USING doomed WHERE c.pk_entity_change_log = doomed.pk RETURNING 1`
	if dryRun {
		gone = `SELECT 1 FROM doomed`
	}
	return fmt.Sprintf(`WITH bound AS MATERIALIZED (
  SELECT cp.listener_id::text AS listener_id, cp.txid AS tx, cp.event_id AS pk
  FROM observer_checkpoints cp
  WHERE cp.change_log IS NULL OR cp.change_log = $5::text
  ORDER BY cp.txid, cp.event_id
  LIMIT 1
), cand AS MATERIALIZED (
  SELECT c.pk_entity_change_log AS pk, COALESCE(c.txid, '0'::xid8) AS tx, c.created_at < $4 AS old
  FROM %[1]s c
  WHERE (COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) > ($1::text::xid8, $2::bigint)
    AND (COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) <= ((SELECT tx FROM bound), (SELECT pk FROM bound))
  ORDER BY COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log
  LIMIT $3
), pinned AS MATERIALIZED (
  %[2]s
), doomed AS (
  SELECT cand.pk FROM cand
  WHERE cand.old AND NOT EXISTS (SELECT 1 FROM pinned WHERE pinned.seq = cand.pk)
), gone AS (
  %[3]s
), last AS (
  SELECT tx, pk FROM cand ORDER BY tx DESC, pk DESC LIMIT 1
)
SELECT (SELECT count(*) FROM cand), (SELECT count(*) FROM cand WHERE old), (SELECT count(*) FROM gone),
  COALESCE((SELECT tx::text FROM last), $1::text), COALESCE((SELECT pk FROM last), $2::bigint),
  COALESCE((SELECT listener_id FROM bound), ''), (SELECT tx::text FROM bound), (SELECT pk FROM bound)`,
		table, strings.Join(pinned, "\n  UNION ALL\n  "), gone)
}

// changeLogName is the table as the listener records it in
// observer_checkpoints.change_log (sql/queries/checkpoint.sql); "" when the
// table does not exist.
func (w *work) changeLogName(ctx context.Context) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var name *string
	err := w.r.p.DB.QueryRow(qctx, `SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1::text)`, w.r.log.Quoted()).Scan(&name)
	if err != nil {
		return "", errors.Wrap(err, "look up the change log")
	}
	if name == nil {
		return "", nil
	}
	return *name, nil
}

func (w *work) changeLog(ctx context.Context, t *TableReport) error {
	name, err := w.changeLogName(ctx)
	if err != nil {
		return err
	}
	if name == "" {
		return errors.WithHint(errors.Newf("change log %s does not exist", w.r.p.ChangeLog),
			"check listener.table, and that `fraiseql-observers migrate` ran against this database")
	}
	sql := changeLogSQL(w.r.log.Quoted(), w.r.p.Pins, w.o.DryRun)
	curTx, curPk := "0", int64(-1) // before every row
	return w.batches(ctx, t, func(ctx context.Context, limit int) (int64, bool, error) {
		var read, old, gone int64
		var cpTx *string
		var cpPK *int64
		err := w.r.p.DB.QueryRow(ctx, sql, curTx, curPk, limit, *t.Before, name).
			Scan(&read, &old, &gone, &curTx, &curPk, &t.HeldBy, &cpTx, &cpPK)
		if err != nil {
			return 0, false, errors.Wrap(err, "delete old change-log rows")
		}
		if cpTx != nil && cpPK != nil {
			t.Checkpoint = &Checkpoint{TxID: *cpTx, PK: *cpPK}
		}
		t.Pinned += old - gone
		// The end: the checkpoint, or a whole batch too young.
		return gone, read < int64(limit) || old == 0, nil
	})
}
