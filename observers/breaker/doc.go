// Package breaker is the circuit breakers of delivery endpoints
// (observers.Breakers): a breaker per endpoint, shared by every instance
// through a storage.BreakerStore, its metrics
// (observer_circuit_breaker_*), and the rules below. While a breaker is
// open, Allow answers with an *observers.SnoozeError and the worker puts
// the job back without spending an attempt.
//
// A breaker per endpoint uses gobreaker's DistributedCircuitBreaker as the
// state machine (closed → open → half-open → closed). A breaker is named by
// observers.EndpointName: the endpoint URL (scheme://host:port/path) by
// default, so one failing path of a shared host pauses only itself, or the
// host (scheme://host:port) with circuit_breaker.scope: host. The name is
// the key of its shared state, its metrics' endpoint label and what `status`
// shows. How the configuration maps onto gobreaker:
//
//   - Opening: ReadyToTrip is true when the sample holds at least MinRequests
//     requests and failures/requests >= FailureThreshold. The sample is
//     gobreaker's rolling window (Interval = Window, in 10 buckets); when it
//     reaches SampleSize requests every count is halved, so older requests
//     fade out and the ratio is taken over the last SampleSize/2 to
//     SampleSize requests (at most those of the last Window).
//   - Half-open: after Timeout the breaker admits MaxRequests =
//     max(1, MinRequests/2) probes. gobreaker closes after MaxRequests
//     consecutive successes and reopens on a failure; to honour
//     SuccessThreshold, up to floor(MaxRequests × (1 − SuccessThreshold))
//     failed probes are excluded (neither success nor failure), each freeing
//     its probe slot. The breaker therefore closes with a probe success ratio
//     of at least MaxRequests/(MaxRequests+excused) >= SuccessThreshold, and
//     reopens as soon as that ratio can no longer be reached.
//   - Outcomes: success is a 2xx or a permanent DeliveryError (a 4xx is the
//     receiver's answer, not an outage); failure is a transient one (5xx,
//     408, 429, timeouts, connection errors). SSRF refusals, cancelled
//     requests and requests snoozed after the breaker admitted them (a rate
//     limit, no free in-flight slot: observers.SnoozeError) are not counted.
//
// Requests are never sent under the breaker's lock. Allow decides from a
// cached copy of the shared state (refreshed at most every CacheTTL, and not
// at all while the breaker is open and its timeout runs), so a rejection is a
// mutex and a time comparison. The trade-off: an instance learns that
// another one opened the breaker up to CacheTTL late, and lets that much
// traffic through meanwhile. Outcomes are recorded afterwards, batched: the
// first Done to find no flush running writes every outcome queued meanwhile
// under one lock (lock, read, write, unlock: four round trips per batch).
// In half-open, each instance admits up to MaxRequests probes of its own.
package breaker
