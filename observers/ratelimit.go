package observers

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Bounds of a rate limit's count (rate_limit: N/s).
const (
	RateLimitMax = 1_000_000
)

// RateLimitConfig is the rate limit of an endpoint: at most Limit requests
// per Per, counted by every instance together. It is a token bucket of Limit
// tokens that refills at Limit per Per: up to Limit requests may go at once,
// then one every Per/Limit. The zero value is no limit.
type RateLimitConfig struct {
	Limit int           // requests per Per; 0: no rate limit
	Per   time.Duration // time.Second, time.Minute or time.Hour
	// Scope is what one limit counts: ScopeEndpoint (the default) the
	// requests to an endpoint URL, ScopeHost those to every path of a host.
	Scope string
}

// Enabled reports whether c limits anything.
func (c RateLimitConfig) Enabled() bool { return c.Limit > 0 && c.Per > 0 }

// Interval is the time one request's token takes to come back: Per/Limit.
func (c RateLimitConfig) Interval() time.Duration {
	if !c.Enabled() {
		return 0
	}
	return max(c.Per/time.Duration(c.Limit), time.Microsecond)
}

// String renders the rate as written: "50/s", "600/m", "1000/h"; "" when
// disabled.
func (c RateLimitConfig) String() string {
	if !c.Enabled() {
		return ""
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[c.Per]
	if unit == "" {
		return strconv.Itoa(c.Limit) + "/" + ShortDuration(c.Per)
	}
	return strconv.Itoa(c.Limit) + "/" + unit
}

var rateRE = regexp.MustCompile(`^(\d+)\s*/\s*([a-z]+)$`)

var rateUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
}

// RateHint shows how a rate is written.
const RateHint = "write a rate as requests per unit: 50/s, 600/m or 1000/h"

// ParseRate reads a rate "N/s", "N/m" or "N/h" (N from 1 to RateLimitMax)
// into a RateLimitConfig without a scope.
func ParseRate(s string) (RateLimitConfig, error) {
	m := rateRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil || rateUnits[m[2]] == 0 {
		return RateLimitConfig{}, errors.Newf("%q is not a rate", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 1 || n > RateLimitMax {
		return RateLimitConfig{}, errors.Newf("rate %q: the count must be from 1 to %d", s, RateLimitMax)
	}
	return RateLimitConfig{Limit: n, Per: rateUnits[m[2]]}, nil
}

// RateLimiter keeps the rate limits of endpoints, shared by every instance
// (observers/ratelimit).
type RateLimiter interface {
	// Take takes one request's token of the endpoint named endpoint (an
	// EndpointName) under cfg. It returns nil, or a *SnoozeError when the
	// request must wait: the endpoint is at its limit (Until is the
	// request's turn), or the limit cannot be checked (its store is down;
	// the request waits rather than risk going over). A snoozed request
	// spends no attempt and is never dropped.
	Take(ctx context.Context, endpoint string, cfg RateLimitConfig) error
}
