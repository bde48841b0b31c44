package observertest_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/observertest"
)

// A program (a benchmark, a demo) runs the observer without a testing.T:
// Spawn, WaitLeader, write a change, wait for the signed delivery, Stop.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := os.Getenv("DATABASE_URL") // a database migrated by `fraiseql-observers migrate`
	dir, err := os.MkdirTemp("", "example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := observertest.BuildBinary(dir)
	if err != nil {
		log.Fatal(err)
	}

	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	recv, err := observertest.ListenReceiver(observertest.ReceiverOptions{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()
	p, err := observertest.Spawn(ctx, observertest.ProcessOptions{Binary: bin, DatabaseURL: dbURL, Config: `
allow_private_targets: true
observers:
  order_created:
    entity: Order
    events: [INSERT]
    actions:
      - {type: webhook, url: ` + recv.URL() + `/orders, signing_secret: ` + secret + `}
`})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Kill()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := p.WaitLeader(ctx, pool); err != nil {
		log.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', '42', 'INSERT', '{"total": 250}')`); err != nil {
		log.Fatal(err)
	}
	got, err := recv.Wait(ctx, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got[0].Path, got[0].Scheme, got[0].SignatureErr)
	if err := p.Stop(30 * time.Second); err != nil {
		log.Fatal(err)
	}
}

// A Receiver verifies each request's signature and answers 401 to a bad one.
func ExampleReceiver() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	recv, err := observertest.ListenReceiver(observertest.ReceiverOptions{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer recv.Close()

	send := func(key string) int {
		body := []byte(`{"id": "42"}`)
		now := time.Now()
		sig, err := webhook.SignStandard(key, "msg_42", now, body)
		if err != nil {
			log.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, recv.URL()+"/orders", bytes.NewReader(body))
		req.Header.Set(webhook.HeaderWebhookID, "msg_42")
		req.Header.Set(webhook.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhook.HeaderWebhookSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println(send(secret), send("whsec_QW5vdGhlciBzZWNyZXQgb2YgMjQgYnl0ZXM="))
	for _, d := range recv.All() {
		fmt.Println(d.Seq, d.Path, d.Status, d.Scheme, d.SignatureErr != nil)
	}
	// Output:
	// 200 401
	// 1 /orders 200 standard false
	// 2 /orders 401 standard true
}
