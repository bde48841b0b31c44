// Package retention deletes what the observer no longer needs, per the
// retention: block: completed River jobs, dead letters (cancelled and
// discarded jobs), observer_skipped_events rows, the Postgres audit trail
// (observer_audit) and the search documents' tombstones (both after
// retention.audit) and, when enabled, the change log. It deletes in bounded batches (at most BatchRowsDefault rows
// a statement, each its own transaction of about BatchTimeDefault: a
// writing transaction holds back the horizon the listener reads below)
// with a pause after each, so the live pipeline keeps its latency, and
// counts what it deleted (observer_retention_deleted_total{table}).
//
// A change-log row goes only once it is older than its period, the
// checkpoint of every listener group reading its table has passed it, and
// no Pin keeps it: by default every observer delivery not yet completed,
// dead letters included (river.JobPinsSQL). Runner.Run is the River
// periodic job (river.ClientParams.Retention); Runner.Apply is the same
// work for `fraiseql-observers retention`, with --dry-run counting instead.
//
// SQL naming River's table lives in package river; this package names
// only the change log and the observer's own tables.
package retention
