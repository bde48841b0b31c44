package river

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// ResultCacheOpTimeoutDefault bounds each read or write of the result cache,
// so a slow backend delays a delivery by at most this much.
const ResultCacheOpTimeoutDefault = time.Second

// resultCache is the result cache of webhook and Slack actions, on when the
// job's configuration version has a cache: block. A successful action's
// result is stored under action:{type}:{entity_type}:{entity_id}:{hash of the
// rendered request} for cache.ttl; an identical request within the TTL is
// served from it and not sent.
//
// A cache failure never fails or holds back a delivery: it is logged and the
// request is sent (the store passed in is observers.InstrumentCache'd, which
// counts hits, misses and errors). Within one process, identical requests in
// flight at once wait for the first, so a burst of the same change sends it
// once; across processes two may race and both send.
type resultCache struct {
	store  storage.Cache
	logger *slog.Logger

	mu       sync.Mutex
	inflight map[string]chan struct{} // key → closed when its sender is done
}

// newResultCache returns nil (no result cache) when store is nil.
func newResultCache(store storage.Cache, logger *slog.Logger) *resultCache {
	if store == nil {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &resultCache{store: store, logger: logger, inflight: map[string]chan struct{}{}}
}

// cachedResult is the value stored for a successful action.
type cachedResult struct {
	Status int       `json:"status,omitempty"` // the receiver's HTTP status (webhook)
	At     time.Time `json:"at"`
}

func (rc *resultCache) on(v *Version) bool {
	return rc != nil && v.Config.Cache.Enabled
}

// webhookKey returns the cache key of a rendered webhook request, or "" when
// the result cache is off. The default envelope names the event (id,
// timestamp) as the webhook-id header does, so those two fields are left out
// of the hash: the same change logged twice renders the same request. A body
// template is hashed as rendered.
func (rc *resultCache) webhookKey(v *Version, o *observers.Observer, idx int, ev *observers.Event, url string, body []byte) string {
	if !rc.on(v) {
		return ""
	}
	wa := o.Actions[idx].Webhook
	if wa.Body() == nil {
		env := ev.Envelope(o.Name)
		env.ID, env.Timestamp = "", time.Time{}
		if b, err := json.Marshal(env); err == nil {
			body = b
		}
	}
	return resultKey("webhook", ev, o.Name, cmp.Or(wa.Method, observers.WebhookMethodDefault), url, wa.Headers, body)
}

// slackKey returns the cache key of a rendered Slack message, or "" when the
// result cache is off.
func (rc *resultCache) slackKey(v *Version, o *observers.Observer, ev *observers.Event, url string, body []byte) string {
	if !rc.on(v) {
		return ""
	}
	return resultKey(observers.ActionTypeSlack, ev, o.Name, http.MethodPost, url, nil, body)
}

// resultKey hashes the observer, method, URL, the user headers (not the
// per-attempt webhook-id, timestamp and signature ones, which the client
// sets itself) and the body.
func resultKey(actionType string, ev *observers.Event, observer, method, url string, headers map[string]string, body []byte) string {
	h := sha256.New()
	field(h, []byte(observer))
	field(h, []byte(strings.ToUpper(method)))
	field(h, []byte(url))
	names := make([]string, 0, len(headers))
	for k := range headers {
		if !observers.IsReservedWebhookHeader(k) {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(http.CanonicalHeaderKey(a), http.CanonicalHeaderKey(b)) })
	_ = binary.Write(h, binary.BigEndian, uint32(len(names)))
	for _, k := range names {
		field(h, []byte(http.CanonicalHeaderKey(k)))
		field(h, []byte(headers[k]))
	}
	field(h, body)
	return "action:" + actionType + ":" + ev.EntityType + ":" + ev.EntityID + ":" + hex.EncodeToString(h.Sum(nil))
}

// field writes b length-prefixed, so adjacent fields cannot run together.
func field(h hash.Hash, b []byte) {
	_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
	h.Write(b)
}

func noop() {}

// errServedFromCache is what an action method returns when the result cache
// answered: Work completes the job without counting an executed action.
var errServedFromCache = errors.New("served from the result cache")

// lookup reports whether key's result is cached: the action is then done and
// nothing is sent. On a miss the caller holds key in this process until it
// calls release (after store), so identical requests wait for it instead of
// sending too. A key of "" (cache off) returns at once.
func (rc *resultCache) lookup(ctx context.Context, key string) (hit bool, release func()) {
	if key == "" {
		return false, noop
	}
	var done chan struct{}
	for done == nil {
		rc.mu.Lock()
		wait, busy := rc.inflight[key]
		if !busy {
			done = make(chan struct{})
			rc.inflight[key] = done
		}
		rc.mu.Unlock()
		if busy {
			select {
			case <-wait:
			case <-ctx.Done():
				return false, noop
			}
		}
	}
	release = func() {
		rc.mu.Lock()
		delete(rc.inflight, key)
		rc.mu.Unlock()
		close(done)
	}
	gctx, cancel := context.WithTimeout(ctx, ResultCacheOpTimeoutDefault)
	_, err := rc.store.Get(gctx, key)
	cancel()
	switch {
	case err == nil:
		release()
		rc.logger.DebugContext(ctx, "worker: served from the result cache", slog.String("cache_key", key))
		return true, noop
	case errors.Is(err, storage.ErrNotFound):
		return false, release
	default:
		release() // a failing backend must not serialise identical requests
		rc.logger.WarnContext(ctx, "worker: result cache read failed; sending the request",
			slog.String("backend", rc.store.Backend()), slog.String("error", err.Error()))
		return false, noop
	}
}

// save stores the result of a successful request under key for the job's
// cache.ttl; a failure is logged, never returned.
func (rc *resultCache) save(ctx context.Context, v *Version, key string, status int) {
	if key == "" {
		return
	}
	val, err := json.Marshal(cachedResult{Status: status, At: time.Now().UTC()})
	if err != nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ResultCacheOpTimeoutDefault)
	defer cancel()
	if err := rc.store.Set(sctx, key, val, cmp.Or(v.Config.Cache.TTL, observers.CacheTTLDefault)); err != nil {
		rc.logger.WarnContext(ctx, "worker: result cache write failed",
			slog.String("backend", rc.store.Backend()), slog.String("error", err.Error()))
	}
}
