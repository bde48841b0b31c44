// Package changelog reads a change-log table (FraiseQL's
// core.tb_entity_change_log or one of the same shape): batches in commit
// order below the transaction horizon (ReadBatch), a cheap look for more
// (Peek), rows by pk for the workers (GetMany), and the rows a replay reads
// again below the listener's checkpoint (ReadRange, CountRange). Rows that
// cannot be decoded come back as Skipped with a reason; a missing row wraps
// storage.ErrNotFound.
package changelog
