// Command demo runs fraiseql-observers end to end on a local Postgres: it
// migrates the database, starts a webhook receiver on loopback that verifies
// every signature, runs the observer with examples/observers.yaml, writes a
// few changes (one table through observers.track) and prints each delivery
// as it arrives. It exits 0 once every expected delivery has arrived and the
// observer has shut down cleanly.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
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

	recv, err := startReceiver(secret, tag)
	if err != nil {
		return err
	}
	defer recv.srv.Close()
	step("receiver listening on %s", recv.url)

	step("run --config %s", config)
	run := exec.Command(bin, "run", "--config", config, "--database-url", dbURL,
		"--http-addr", "127.0.0.1:0", "--log-level", "warn")
	run.Env = append(os.Environ(), "DEMO_WEBHOOK_URL="+recv.url+"/hooks", "DEMO_WEBHOOK_SECRET="+secret)
	run.Stdout, run.Stderr = os.Stdout, os.Stderr
	if err := run.Start(); err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	defer func() { _ = run.Process.Kill() }()

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := waitLeader(ctx, pool, run.Process.Pid, exited); err != nil {
		return err
	}
	step("observer is leading; writing changes tagged %s", tag)

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
	if _, err := pool.Exec(ctx, `DELETE FROM demo_product WHERE id = $1`, id); err != nil {
		return err
	}

	for n := 0; n < expectedDeliveries; {
		select {
		case <-recv.arrived:
			n++
		case err := <-exited:
			return fmt.Errorf("run exited early: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d deliveries arrived in %s", n, expectedDeliveries, timeout)
		}
	}
	step("all %d deliveries arrived with valid signatures; stopping the observer (SIGTERM)", expectedDeliveries)
	_ = run.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("run did not exit cleanly: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("run did not stop in time")
	}
	if bad := recv.invalid(); bad > 0 {
		return fmt.Errorf("%d deliveries had an invalid signature", bad)
	}
	step("done: the observer drained and exited 0")
	return nil
}

func waitLeader(ctx context.Context, pool *pgxpool.Pool, pid int, exited <-chan error) error {
	for {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM observer_listeners WHERE pid = $1 AND role = 'leader'`, pid).Scan(&n)
		if err == nil && n > 0 {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("run exited before leading: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("run did not become leader (is another instance leading listener 'default'?)")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type receiver struct {
	srv     *http.Server
	url     string
	arrived chan struct{}
	mu      sync.Mutex
	n, bad  int
}

func (r *receiver) invalid() int { r.mu.Lock(); defer r.mu.Unlock(); return r.bad }

// startReceiver accepts deliveries whose body carries tag (older demo runs'
// changes may still be in the log) and prints them.
func startReceiver(secret, tag string) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), arrived: make(chan struct{}, 100)}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if !strings.Contains(string(body), tag) {
			w.WriteHeader(http.StatusOK) // a leftover from an earlier run
			return
		}
		scheme, verr := "standard-webhooks", error(nil)
		if sig := req.Header.Get(webhook.HeaderFraiseQLSig256); sig != "" {
			scheme = "x-fraiseql-signature-256"
			verr = webhook.VerifyFraiseQL(secret, sig, body, time.Now(), 0)
		} else {
			verr = webhook.VerifyStandard(secret, req.Header, body, time.Now(), 0)
		}
		r.mu.Lock()
		r.n++
		n := r.n
		verdict := "signature ok (" + scheme + ")"
		if verr != nil {
			r.bad++
			verdict = "SIGNATURE INVALID: " + verr.Error()
		}
		r.mu.Unlock()
		fmt.Printf("<-- delivery %d  webhook-id=%s  %s\n    %s\n", n, req.Header.Get("webhook-id"), verdict, compact(body))
		w.WriteHeader(http.StatusOK)
		r.arrived <- struct{}{}
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func compact(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
