package observers

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// AuditRecorder takes the audit trail's records (observers/audit.Recorder
// implements it). Record never blocks and never fails: a record it cannot
// keep is dropped and counted.
type AuditRecorder interface {
	Record(storage.AuditRecord)
}

// AuditErrorMax bounds the error text of an audit record, in characters.
const AuditErrorMax = 4096

// EventRecord is ev's event record: received (its deliveries were
// enqueued) or skipped (reason says why). Its time is the event's
// created_at and its data the event's data as stored (not encoded again).
func EventRecord(ev *Event, status storage.AuditStatus, reason string) storage.AuditRecord {
	return storage.AuditRecord{
		ID: storage.AuditID(ev.Seq, "", 0, 0, status), EventID: ev.ID, EventSeq: ev.Seq, EntityType: ev.EntityType,
		EntityID: ev.EntityID, EventKind: eventKind(ev), Timestamp: ev.CreatedAt.UTC().Truncate(time.Millisecond),
		Status: status, Error: auditError(reason), Data: ev.RawData,
	}
}

// OutcomeRecord is the record of an outcome of action idx of o for ev at
// attempt (0: none made, deduplicated), now. A replay's outcomes (replay
// is observer_replays.id; 0 for the listener's deliveries) get ids of
// their own, so replaying an event records its outcomes again. took is the
// attempt's duration; errText the failure ("" when none).
func OutcomeRecord(ev *Event, o *Observer, idx, attempt int, replay int64, status storage.AuditStatus, errText string, took time.Duration) storage.AuditRecord {
	id := storage.AuditID(ev.Seq, o.Name, idx, attempt, status)
	if replay != 0 {
		id += ":replay" + strconv.FormatInt(replay, 10)
	}
	return storage.AuditRecord{
		ID: id, EventID: ev.ID, EventSeq: ev.Seq, EntityType: ev.EntityType, EntityID: ev.EntityID, EventKind: eventKind(ev),
		Timestamp: time.Now().UTC().Truncate(time.Millisecond), ObserverID: o.Name, ActionType: o.Actions[idx].Type(),
		ActionIndex: idx, Status: status, Error: auditError(errText), Attempt: attempt, DurationMS: took.Milliseconds(),
	}
}

// DeliveryRecord is the record of d's attempt: status, the error it failed
// with (nil when none) and how long it took.
func (d *Delivery) DeliveryRecord(status storage.AuditStatus, err error, took time.Duration) storage.AuditRecord {
	var text string
	if err != nil {
		text = err.Error()
	}
	return OutcomeRecord(d.Event, d.Observer, d.Index, d.Attempt, d.Replay, status, text, took)
}

func eventKind(ev *Event) string { return cmp.Or(string(ev.Kind), ev.RawKind) }

// auditError bounds an error for a record and removes NUL bytes, which
// neither jsonb nor Elasticsearch keep.
func auditError(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return Shorten(s, AuditErrorMax)
}
