package observers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// UserAgentDefault identifies the observer to receivers (HTTP User-Agent,
// the email's User-Agent header).
const UserAgentDefault = "fraiseql-observers"

// Delivery is one action of one observer for one event: what Action.Run is
// given for an attempt.
type Delivery struct {
	Event    *Event
	Observer *Observer
	Index    int     // of the action in Observer.Actions
	Config   *Config // the configuration version that matched the event
	Attempt  int     // 1-based
	Env      *Env
	// Replay is the replay (observer_replays.id) that enqueued the delivery
	// again; 0 for the listener's. A replayed request is sent even when the
	// result cache holds an identical success: the operator asked for it.
	Replay int64
	// JobID is the River job that runs the delivery (the batch job's for a
	// delivery of a batch); 0 outside River.
	JobID int64
}

// Action returns the delivered action.
func (d *Delivery) Action() Action { return d.Observer.Actions[d.Index] }

// MessageID is the delivery's idempotency key: the same on every attempt
// (webhooks send it as webhook-id, email as its Message-ID).
func (d *Delivery) MessageID() string { return MessageID(d.Event.ID, d.Observer.Name, d.Index) }

// MessageID is the idempotency key of one delivery: the same for every
// attempt of (event, observer, action), different for any other.
func MessageID(eventID, observer string, actionIndex int) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + observer + "\x00" + strconv.Itoa(actionIndex)))
	return "msg_" + hex.EncodeToString(h[:16])
}

// Env holds the services of the process that deliveries use. The daemon
// builds one; every field may be nil in tests, and an action whose service
// is missing fails permanently with a hint.
type Env struct {
	// DB runs the database action's functions (the process's pool).
	DB TxBeginner
	// HTTP sends webhook and Slack requests: one keep-alive transport with
	// the SSRF guard (observers/action/webhook.NewHTTPClient).
	HTTP *http.Client
	// Breakers are the circuit breakers per endpoint (observers/breaker).
	Breakers Breakers
	// RateLimits are the rate limits per endpoint (observers/ratelimit).
	RateLimits RateLimiter
	// Results is the result cache, used when a configuration has a cache:
	// block (observers/resultcache).
	Results ResultCache
	// Search stores the documents of search actions.
	Search storage.Search
	// Invalidator deletes application cache keys (cache actions).
	Invalidator storage.Invalidator
	// Logger receives the log action's lines; default discard.
	Logger *slog.Logger
	// Getenv reads *_env variables at send time; default: none set.
	Getenv func(string) (string, bool)
	// Audit records the outcome of every delivery attempt (the worker
	// calls it); nil when the audit: block is off, and then nothing is
	// built.
	Audit AuditRecorder
}

// Log returns e's logger, or one that discards.
func (e *Env) Log() *slog.Logger {
	if e == nil || e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// LookupEnv reads an environment variable through e.Getenv.
func (e *Env) LookupEnv(name string) (string, bool) {
	if e == nil || e.Getenv == nil {
		return "", false
	}
	return e.Getenv(name)
}

// Allow asks e.Breakers for a request to url, whose breaker is named by
// EndpointName with cfg.Scope; without breakers every request is allowed.
// The permit is never nil. Admit asks a rate limit too.
func (e *Env) Allow(ctx context.Context, url string, cfg CircuitBreakerConfig) (BreakerPermit, error) {
	return e.Admit(ctx, HTTPTarget{URL: url, Breaker: cfg})
}

type noPermit struct{}

func (noPermit) Done(context.Context, error) {}

// TxBeginner is a pool or connection that can begin a transaction.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Breakers admits requests to endpoints through their circuit breakers.
type Breakers interface {
	// Allow asks the breaker named endpoint (an EndpointName), configured
	// by cfg, for one request. It returns a permit to report the outcome
	// to, or a *SnoozeError without any request being sent when the breaker
	// is open.
	Allow(ctx context.Context, endpoint string, cfg CircuitBreakerConfig) (BreakerPermit, error)
}

// BreakerPermit is one admitted request.
type BreakerPermit interface {
	// Done records the request's outcome: the error Run is about to
	// return (nil when delivered). A *SnoozeError (the request was not
	// sent after all: a rate limit, no free slot) counts neither way.
	Done(ctx context.Context, err error)
}

// ResultCache remembers successful requests for a while, so an identical
// one within the TTL is not sent again.
type ResultCache interface {
	// Lookup reports whether key's result is cached. On a miss the caller
	// holds key in this process until it calls release (after Save), so
	// identical requests wait for it instead of sending too.
	Lookup(ctx context.Context, key string) (hit bool, release func())
	// Save stores a success (status: the receiver's HTTP status, if any)
	// under key for ttl; failures are logged, never returned.
	Save(ctx context.Context, key string, status int, ttl time.Duration)
}

// ErrCached is returned by Run when the result cache answered: the
// delivery is done and nothing was sent.
var ErrCached = errors.New("served from the result cache")

// ErrPrivateTarget marks a request refused by the SSRF guard because its
// target resolves to a loopback, private or otherwise internal address.
var ErrPrivateTarget = errors.New("webhook target is a private or loopback address")

// PrivateTargetHint is the hint carried by every SSRF refusal.
const PrivateTargetHint = "set allow_private_targets: true to allow private and loopback targets"

// SnoozeError says that a delivery was not attempted and should be tried
// again at Until; no attempt is spent.
type SnoozeError struct {
	Until time.Time
	Err   error // why (a *breaker.OpenError)
}

func (e *SnoozeError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return "delivery snoozed until " + e.Until.UTC().Format(time.RFC3339Nano)
}

func (e *SnoozeError) Unwrap() error { return e.Err }

// DeliveryError classifies a failed attempt.
type DeliveryError struct {
	// StatusCode is the response status, 0 for transport errors.
	StatusCode int
	// Permanent is true when retrying cannot help: 4xx except 408 and 429,
	// 3xx (redirects are not followed), SSRF refusal, invalid request.
	Permanent bool
	// RetryAfter is the receiver's Retry-After (seconds or HTTP date), 0 when
	// absent.
	RetryAfter time.Duration
	// Err says what happened; its message names the URL without userinfo or
	// query values.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	if e.StatusCode != 0 {
		return fmt.Sprintf("delivery failed with status %d", e.StatusCode)
	}
	return "delivery failed"
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	return &DeliveryError{Permanent: true, Err: err}
}

// IsPermanent reports whether err is a permanent *DeliveryError.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}
