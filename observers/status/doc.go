// Package status reads one listener group's health for `fraiseql-observers
// status`: the leader and instances with their heartbeats, the checkpoint
// and the lag, the transaction holding the horizon back, the queue depth
// and the dead-letter queue (through river.CountJobs: only the river
// package knows River's tables), the workers of each River queue (running
// jobs, and the limits the healthy instances recorded with their
// heartbeats) and the circuit breakers. It writes nothing.
package status
