// Package ratelimit is the rate limits of delivery endpoints
// (observers.RateLimiter): rate_limit: 50/s on a webhook or Slack action, or
// the top-level rate_limit.default, counted by every instance together
// through a storage.RateLimitStore (Postgres by default, Redis with
// rate_limit.backend: redis), and its metrics (observer_rate_limited_total,
// observer_rate_limit_errors_total).
//
// A limit is a token bucket per endpoint (observers.EndpointName with the
// limit's scope: the endpoint URL, or its host): N tokens that refill at N
// per unit, so up to N requests may go at once and N per unit in the long
// run, whichever instance sends them. Actions that name the same endpoint
// share its bucket, each with its own rate. A request that finds no token
// takes none and is snoozed (an *observers.SnoozeError: no attempt spent,
// never dropped) until its place in the endpoint's wait line: refused
// requests are told to come back one interval apart, so a backlog drains at
// the limit's pace instead of all waking at once. Returning, a request asks
// again; a fresh one may have taken the token meanwhile, and it waits again.
//
// When the store cannot be reached the request is snoozed too (for
// ErrorSnooze): a limit is a promise to the receiver, kept by waiting
// rather than by guessing.
package ratelimit
