package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// BenchmarkAuditWrite writes batches of 1,000 records as the recorder
// does: for each event its record (with data, indexed words) and one
// delivery outcome (no data, no error). It reports records/s.
//
//	go test ./storage/postgres -run '^$' -bench AuditWrite -benchtime 50x
func BenchmarkAuditWrite(b *testing.B) {
	pool, _ := sqltest.NewDB(b)
	benchAuditWrite(b, pool)
}

func benchAuditWrite(b *testing.B, pool *pgxpool.Pool) {
	ctx := context.Background()
	a := postgres.NewAudit(pool)
	const batch = 1000
	seq := int64(0)
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		recs := make([]storage.AuditRecord, 0, batch)
		for len(recs) < batch {
			seq++
			at := start.Add(time.Duration(seq) * time.Millisecond)
			data, _ := json.Marshal(map[string]any{"id": seq, "status": "shipped", "total": 99.5,
				"customer": map[string]any{"name": "Ada Lovelace", "email": fmt.Sprintf("ada%d@example.com", seq%500)}})
			ev := storage.AuditRecord{ID: storage.AuditID(seq, "", 0, 0, storage.AuditReceived), EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", seq),
				EventSeq: seq, EntityType: "Order", EntityID: fmt.Sprint(seq % 5000), EventKind: "UPDATE", Timestamp: at,
				Status: storage.AuditReceived, Data: data}
			out := ev
			out.ID, out.ObserverID, out.ActionType, out.Status, out.Attempt, out.DurationMS, out.Data =
				storage.AuditID(seq, "order_webhook", 0, 1, storage.AuditSucceeded), "order_webhook", "webhook", storage.AuditSucceeded, 1, 12, nil
			recs = append(recs, ev, out)
		}
		b.StartTimer()
		if err := a.Write(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
