package retention

import obsriver "github.com/fraiseql/fraiseql-observers/river"

// A Pin keeps change-log rows that something still needs, whatever their
// age. Retention runs every pin's query inside the statement that deletes,
// so a pin sees the same snapshot as the checkpoint read there: whatever
// committed before that statement and needs a row either pins it or has
// not yet been passed by the checkpoint.
//
// Pins are the extension point for anything else that reads old rows:
// add a Pin to DefaultPins (which both `run` and the retention command
// use).
type Pin struct {
	// Name says what the pin keeps, for people reading the code and logs.
	Name string
	// Seqs returns a query whose one bigint column, seq, lists the
	// pk_entity_change_log values to keep. changeLog is the table retention
	// deletes from, quoted (a pin may read it to turn a range into pks).
	Seqs func(changeLog string) string
}

// DeliveriesPin keeps every row an observer delivery not yet completed
// refers to: pending, running, retrying, snoozed and dead (so `dlq retry`
// finds its event).
var DeliveriesPin = Pin{Name: "deliveries", Seqs: func(string) string { return obsriver.JobPinsSQL }}

// ReplaysPin keeps the rows an unfinished replay (observer_replays, state
// running: in progress or interrupted, to be resumed) has yet to read:
// after its position, up to the bound it took from the checkpoint.
var ReplaysPin = Pin{Name: "replays", Seqs: func(changeLog string) string {
	return `SELECT c.pk_entity_change_log AS seq FROM observer_replays r JOIN ` + changeLog + ` c
  ON (COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) > (r.position_txid::text::xid8, r.position_pk)
 AND (COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) <= (r.bound_txid::text::xid8, r.bound_pk)
WHERE r.state = 'running'`
}}

// DefaultPins are the pins retention uses when Params.Pins is nil.
func DefaultPins() []Pin { return []Pin{DeliveriesPin, ReplaysPin} }
