// Package replay runs past changes of the change log through the observers
// again (`fraiseql-observers replay`). A replay reads only changes the
// listener has already passed (at or before its checkpoint when the replay
// started), so it never races the listener for the same rows; it reads them
// in the listener's (txid, pk) order, in batches, and each batch is one
// transaction that enqueues the batch's jobs (through a listener.Enqueuer,
// as the listener does) and moves the replay's position in
// observer_replays. An interrupted replay resumes from its position and
// enqueues nothing twice. Deduplication is not applied: the operator asked
// for these deliveries again, and each keeps its webhook-id
// (observers.MessageID), so idempotent receivers see a repeat.
package replay
