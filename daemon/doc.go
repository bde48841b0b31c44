// Package daemon is the `fraiseql-observers run` process: New wires the
// services a configuration needs (the pool, the storage layers, the
// delivery Env, the River client and its workers, the listener, the
// reloader, the admin HTTP server with /metrics, /healthz and /readyz),
// Start runs them in order, Stop drains them in the reverse order. Every
// long-running part is a service with Start and Stop. It is also what
// observertest runs in-process, so an application's tests exercise the
// same wiring as production.
package daemon
