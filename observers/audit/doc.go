// Package audit records the audit trail (the audit: block): one record per
// event the listener read and per delivery outcome, written to a
// storage.Audit asynchronously and in batches, so that recording never
// slows or blocks a delivery.
//
//   - Record never blocks: it puts the record in a bounded buffer (Buffer
//     records, BufferBytes of data and errors); when the buffer is full the
//     record is dropped and counted (observer_audit_dropped_total), and a
//     warning is logged at most once per DropLogInterval.
//   - A flusher writes the buffer in batches of up to BatchSize records, or
//     what FlushInterval gathered.
//   - A batch the backend did not take (it is down: a whole-batch error),
//     or the items of a *storage.BulkError that may pass when retried, go
//     to the Postgres outbox (observer_audit_outbox) in one INSERT. Items
//     that wrap storage.ErrRejected will fail again: they are counted
//     (observer_search_index_failures_total{reason="rejected"}) and logged,
//     not kept.
//   - When the outbox cannot take them either (Postgres is down, which is
//     also the postgres backend being down), the flusher keeps the batch in
//     memory and tries the backend and then the outbox again, with a
//     backoff; meanwhile the buffer fills and new records are dropped, so
//     memory stays bounded.
//   - A drainer writes the outbox's due rows to the backend, BatchSize at a
//     time (FOR UPDATE SKIP LOCKED, so every instance may drain), deletes
//     what was written, and puts back what failed with a backoff per row
//     (RetryBase doubled per attempt, at most RetryMax). Rows are retried
//     until they are written.
//   - Close flushes the buffer, bounded by its context; what it cannot
//     write in time is counted as dropped.
//
// Records have deterministic ids (storage.AuditID), and the backends keep
// the first record of an id, so a record written twice (an outbox row
// written but not deleted before a crash, a batch job retried whole) is
// stored once.
package audit
