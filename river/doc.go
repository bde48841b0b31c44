// Package river runs deliveries as River jobs: the job arguments (a
// delivery's own ActionArgs, a batch of first attempts BatchArgs), the
// Enqueuer the listener inserts them with inside its transaction, the
// workers that run them (ActionWorker, BatchWorker: a delivery is
// Action.Run, whatever its type), the configuration versions jobs are
// matched under (ConfigStore), the event loader, the per-type concurrency
// limits, periodic maintenance and the River client's setup, and the
// dead-letter queue (DLQ: cancelled and discarded deliveries, listed,
// shown, retried and removed by `fraiseql-observers dlq`). It is the only
// package that knows River's tables (CountJobs, CountDead, the DLQ, the
// follow-up jobs' state).
package river
