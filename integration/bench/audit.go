package main

import (
	"context"
	"time"
)

// auditFigures waits (up to two minutes) until every audit record of the
// run (a received per event, a succeeded per delivery) is written or
// counted as dropped, and reports the drops and how long after the last
// delivery the trail was complete.
func auditFigures(ctx context.Context, r *result, db *database, addr string, records int64, last time.Time) {
	var written int64
	var dropped float64
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_ = db.pool.QueryRow(ctx, `SELECT count(*) FROM observer_audit`).Scan(&written)
		dropped = scrapeMetric(addr, "observer_audit_dropped_total")
		if written+int64(dropped) >= records {
			break
		}
	}
	r.add("audit_written", float64(written), "records")
	r.add("audit_dropped", dropped, "records")
	r.add("audit_complete_after_s", time.Since(last).Seconds(), "s")
}
