// Command demo runs fraiseql-observers end to end on a local Postgres: it
// migrates the database, starts a webhook receiver on loopback that verifies
// every signature, runs the observer with examples/observers.yaml, writes a
// few changes (one table through observers.track) and prints each delivery
// as it arrives. It exits 0 once every expected delivery has arrived and the
// observer has shut down cleanly.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/observertest"
)

const expectedDeliveries = 5

func main() {
	bin := flag.String("bin", "bin/fraiseql-observers", "fraiseql-observers binary")
	config := flag.String("config", "examples/observers.yaml", "observer configuration")
	dbURL := flag.String("database-url", envOr("DATABASE_URL", "postgres:///postgres"), "Postgres URL")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if err := demo(*bin, *config, *dbURL, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func demo(bin, config, dbURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	step("migrate")
	mig := exec.CommandContext(ctx, bin, "migrate", "--database-url", dbURL)
	mig.Stdout, mig.Stderr = os.Stdout, os.Stderr
	if err := mig.Run(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	// A fresh secret per run; the receiver verifies every signature with it.
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	secret := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(raw)
	tag := fmt.Sprintf("demo-%d", time.Now().Unix())

	recv, err := observertest.ListenReceiver(observertest.ReceiverOptions{Secret: secret,
		// 200 whatever the signature: the demo reports a bad one itself, and
		// leftovers of earlier runs (signed with their own secret) complete.
		Respond: func(context.Context, observertest.Delivery) observertest.Response { return observertest.Response{} }})
	if err != nil {
		return err
	}
	defer recv.Close()
	step("receiver listening on %s", recv.URL())

	step("run --config %s", config)
	run, err := observertest.Spawn(ctx, observertest.ProcessOptions{Binary: bin, ConfigPath: config, DatabaseURL: dbURL,
		LogLevel: "warn", LogOutput: os.Stderr,
		Env: []string{"DEMO_WEBHOOK_URL=" + recv.URL() + "/hooks", "DEMO_WEBHOOK_SECRET=" + secret}})
	if err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	defer run.Kill()

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := run.WaitLeader(ctx, pool); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("run did not become leader (is another instance leading listener 'default'?)")
		}
		return err
	}
	step("observer is leading; writing changes tagged %s", tag)

	w := &watcher{recv: recv, tag: tag, done: make(chan struct{})}
	go w.watch(ctx)
	if err := writeChanges(ctx, pool, tag); err != nil {
		return err
	}
	select {
	case <-w.done:
	case <-run.Exited():
		return fmt.Errorf("run exited early: %v", run.ExitErr())
	case <-ctx.Done():
		return fmt.Errorf("only %d of %d deliveries arrived in %s", w.arrived.Load(), expectedDeliveries, timeout)
	}
	step("all %d deliveries arrived with valid signatures; stopping the observer (SIGTERM)", expectedDeliveries)
	deadline, _ := ctx.Deadline()
	if err := run.Stop(time.Until(deadline)); err != nil {
		return err
	}
	if w.invalid > 0 {
		return fmt.Errorf("%d deliveries had an invalid signature", w.invalid)
	}
	step("done: the observer drained and exited 0")
	return nil
}

// writeChanges writes the demo's changes: orders into the change log, and a
// product through a table tracked with observers.track.
func writeChanges(ctx context.Context, pool *pgxpool.Pool, tag string) error {
	changes := []struct{ what, sql string }{
		{"Order INSERT, status new, total 250 (matches order_created)",
			`INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
			 VALUES ('Order', '` + tag + `-1', 'INSERT', '{"status": "new", "total": 250}')`},
		{"Order INSERT, status new, total 40 (condition total > 100 filters it out)",
			`INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
			 VALUES ('Order', '` + tag + `-2', 'INSERT', '{"status": "new", "total": 40}')`},
		{"Order UPDATE new → shipped (matches order_shipped, custom body)",
			`INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, object_data_before)
			 VALUES ('Order', '` + tag + `-1', 'UPDATE',
			   '{"status": "shipped", "total": 250, "shipping": {"carrier": "DHL"}}', '{"status": "new", "total": 250}')`},
		{"CREATE TABLE demo_product + observers.track('demo_product')",
			`CREATE TABLE IF NOT EXISTS demo_product (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL, price numeric NOT NULL);
			 SELECT observers.track('demo_product')`},
		{"demo_product INSERT, UPDATE, DELETE (matches product_changes three times)",
			`WITH p AS (INSERT INTO demo_product (name, price) VALUES ('` + tag + `-lamp', 20) RETURNING id)
			 SELECT id FROM p`},
	}
	for _, c := range changes[:4] {
		step("%s", c.what)
		if _, err := pool.Exec(ctx, c.sql); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
	}
	step("%s", changes[4].what)
	var id string
	if err := pool.QueryRow(ctx, changes[4].sql).Scan(&id); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `UPDATE demo_product SET price = 25 WHERE id = $1`, id); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `DELETE FROM demo_product WHERE id = $1`, id)
	return err
}

// watcher prints each delivery whose body carries tag as it arrives (older
// demo runs' changes may still be in the log) and closes done once
// expectedDeliveries have arrived.
type watcher struct {
	recv    *observertest.Receiver
	tag     string
	arrived atomic.Int64
	invalid int // written before done is closed
	done    chan struct{}
}

// schemeNames are the names the demo prints for the signature schemes.
var schemeNames = map[string]string{
	observertest.SchemeStandard: "standard-webhooks",
	observertest.SchemeFraiseQL: "x-fraiseql-signature-256",
}

func (w *watcher) watch(ctx context.Context) {
	for w.arrived.Load() < expectedDeliveries {
		got, err := w.recv.Wait(ctx, 1)
		if err != nil {
			return
		}
		d := got[0]
		if !bytes.Contains(d.Body, []byte(w.tag)) {
			continue
		}
		n := w.arrived.Add(1)
		verdict := "signature ok (" + schemeNames[d.Scheme] + ")"
		if d.SignatureErr != nil {
			w.invalid++
			verdict = "SIGNATURE INVALID: " + d.SignatureErr.Error()
		}
		fmt.Printf("<-- delivery %d  webhook-id=%s  %s\n    %s\n", n, d.ID, verdict, compact(d.Body))
	}
	close(w.done)
}

func compact(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
