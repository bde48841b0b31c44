// Package observertest runs fraiseql-observers in tests, the way River's
// rivertest helps test River workers: the observer runs inside the test
// (Run: the same daemon as `fraiseql-observers run`) or as the real binary
// (StartProcess), against a real database, and a webhook endpoint and an
// SMTP server on loopback see what it delivers.
//
// An application tests its own observers configuration like this:
//
//	func TestOrderWebhook(t *testing.T) {
//		pool, dbURL := myapp.NewTestDB(t) // the application's test database
//		observertest.Migrate(t, pool)     // the observer's tables, once
//		recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: hookSecret})
//		obs := observertest.Run(t, observertest.Options{ConfigPath: "../observers.yaml", DatabaseURL: dbURL,
//			Env: map[string]string{"ORDER_HOOK_URL": recv.URL() + "/orders", "ORDER_HOOK_SECRET": hookSecret}})
//		require.NoError(t, obs.WaitLeader(context.Background()))
//		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "INSERT", Data: `{"total": 250}`})
//		d := recv.WaitN(t, 1, 30*time.Second)[0] // only a valid signature is answered 2xx
//		require.Equal(t, "/orders", d.Path)
//	}
//
// (A loopback receiver needs allow_private_targets: true in the
// configuration the test runs.)
//
// What it owns:
//
//   - Run and Observer: the observer in the test process, with its
//     *_env variables from Options.Env, stopped (drained) on cleanup and
//     its log printed when the test failed; Migrate adds its tables.
//   - Process: one `fraiseql-observers run`, started with Spawn (programs)
//     or StartProcess and SpawnProcess (tests, which kill it on cleanup and
//     log its output when the test failed). It waits for the start, for
//     leadership of the listener group (WaitLeader), and stops with SIGTERM
//     or SIGKILL. Its log stays in memory, or goes to a file of which the
//     last lines stay in memory.
//   - BuildBinary: `go build` of the command, for TestMain.
//   - Receiver: a webhook endpoint that records each request, verifies
//     signatures with webhook.VerifyStandard and webhook.VerifyFraiseQL,
//     answers as the test chooses (status, headers, a delay, a hang), and
//     waits for deliveries; its CountOnly mode only counts, for load runs.
//   - SMTPServer: an SMTP server (github.com/emersion/go-smtp) that keeps
//     every message and can refuse MAIL, RCPT or DATA.
//   - InsertChange writes a change-log row; Metric, LookupMetric and
//     ReadMetric read one sample of a process's /metrics, telling a missing
//     series from 0.
//
// Processes, receivers, SMTP servers and the metric reader also work
// without a testing.TB (Spawn, ListenReceiver, ListenSMTP, ReadMetric,
// returning errors), for programs such as benchmarks and demos.
package observertest
