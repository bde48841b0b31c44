package observertest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
)

// Signature schemes a Receiver verifies; the values of a webhook action's
// `signature:` key.
const (
	SchemeStandard = "standard" // Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
	SchemeFraiseQL = "fraiseql" // X-FraiseQL-Signature-256
)

// MaxBodyBytesDefault bounds a request body a recording Receiver reads.
const MaxBodyBytesDefault = 16 << 20

// ReceiverOptions configures a Receiver. The zero value records every
// request and answers 200.
type ReceiverOptions struct {
	// Secret, when set, verifies each request's signature with
	// webhook.VerifyFraiseQL when it carries X-FraiseQL-Signature-256, else
	// with webhook.VerifyStandard. The outcome is Delivery.Scheme and
	// Delivery.SignatureErr; a request that fails is answered 401 unless
	// Respond decides.
	Secret string
	// Tolerance is how far a signature's timestamp may be from the arrival;
	// 0 means observers.WebhookSignatureToleranceDefault.
	Tolerance time.Duration
	// Respond, when set, chooses each response. It runs on the request's
	// goroutine, concurrently with other requests, and may block to simulate
	// a hanging endpoint: ctx ends when the client gives up or the receiver
	// closes. Without it a request is answered 200, 400 when its body could
	// not be read, 401 when its signature failed.
	Respond func(ctx context.Context, d Delivery) Response
	// Delay is slept before each response.
	Delay time.Duration
	// Discard keeps no copy of the requests (for long runs whose Respond
	// keeps its own records): All returns nothing and Wait fails. Count,
	// arrival times and Expect still work.
	Discard bool
	// CountOnly is the lean mode for load runs: each request's body is read
	// and dropped, it is answered 200 after Delay, and only Count, the
	// arrival times (and, with Track, each id's first arrival) and Expect
	// work. Secret, Respond and Discard must be unset.
	CountOnly bool
	// Track remembers the first arrival of each id found in a body of the
	// form {"id":"..."} (a webhook's body_template), see Arrivals.
	Track bool
	// MaxBodyBytes bounds a body a recording Receiver reads; a larger one is
	// answered 413. Default MaxBodyBytesDefault.
	MaxBodyBytes int64
}

// WithDefaults returns the options with every unset default filled in.
func (o ReceiverOptions) WithDefaults() ReceiverOptions {
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, MaxBodyBytesDefault)
	return o
}

func (o ReceiverOptions) validate() error {
	if o.CountOnly && (o.Secret != "" || o.Respond != nil || o.Discard) {
		return errors.New("observertest: ReceiverOptions.CountOnly excludes Secret, Respond and Discard")
	}
	if o.Delay < 0 || o.Tolerance < 0 || o.MaxBodyBytes < 0 {
		return errors.New("observertest: ReceiverOptions durations and sizes must not be negative")
	}
	return nil
}

// Delivery is one request a Receiver got.
type Delivery struct {
	Seq               int    // 1 for the first request the receiver got, 2 for the next, ...
	Method            string // POST unless the action sets method:
	Path              string
	Header            http.Header
	Body              []byte
	ID                string // webhook-id
	Timestamp         string // webhook-timestamp
	Signature         string // webhook-signature
	FraiseQLSignature string // X-FraiseQL-Signature-256
	At                time.Time
	// Scheme is the signature scheme checked (SchemeStandard or
	// SchemeFraiseQL); "" when the receiver has no Secret.
	Scheme string
	// SignatureErr is the verification's outcome (nil: valid); it matches
	// webhook.ErrSignature with errors.Is.
	SignatureErr error
	// ReadErr is why the body could not be read (the client went away, or
	// it was larger than MaxBodyBytes).
	ReadErr error
	// Status is the status answered; 0 while the response is being chosen.
	Status int
}

// Response is what a Receiver answers.
type Response struct {
	Status int         // 0 means 200
	Header http.Header // added to the response's headers
	Body   []byte
}

// Receiver is a webhook endpoint on loopback, served by its own keep-alive
// http.Server. It records each request, optionally verifies its signature,
// answers as Respond chooses, and lets a test wait for successful (2xx)
// deliveries. Every method is safe for concurrent use.
type Receiver struct {
	opts  ReceiverOptions
	srv   *http.Server
	url   string
	count atomic.Int64 // requests answered 2xx

	mu       sync.Mutex
	requests int
	all      []Delivery    // every request, in order of arrival (unless Discard)
	ok       []Delivery    // requests answered 2xx, in order of answer (unless Discard)
	next     int           // ok[next:] are not yet returned by Wait
	changed  chan struct{} // closed and replaced when ok grows
	first    time.Time
	last     time.Time
	arrived  map[string]time.Time
	want     int64
	done     chan struct{}
}

// ListenReceiver starts a Receiver on a free loopback port. Close it when
// done.
func ListenReceiver(opts ReceiverOptions) (*Receiver, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Wrap(err, "observertest: receiver listen")
	}
	r := &Receiver{opts: opts, url: "http://" + ln.Addr().String(), changed: make(chan struct{}),
		arrived: map[string]time.Time{}, done: make(chan struct{})}
	handler := r.serveRecord
	if opts.CountOnly {
		handler = r.serveCount
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// NewReceiver is ListenReceiver for a test: it fails the test on error and
// closes the receiver on cleanup.
func NewReceiver(t testing.TB, opts ReceiverOptions) *Receiver {
	t.Helper()
	r, err := ListenReceiver(opts)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// URL is the receiver's base URL, http://127.0.0.1:<port>; any path under it
// is served.
func (r *Receiver) URL() string { return r.url }

// Close stops the server and closes its connections (which ends the context
// of a blocked Respond); it does not wait for handlers.
func (r *Receiver) Close() error { return r.srv.Close() }

// serveCount is the CountOnly handler: no copy, no decoding, no channel.
func (r *Receiver) serveCount(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.opts.Delay > 0 {
		time.Sleep(r.opts.Delay)
	}
	now := time.Now()
	w.WriteHeader(http.StatusOK)
	n := r.count.Add(1)
	r.mu.Lock()
	r.noteLocked(n, now, body)
	r.mu.Unlock()
}

func (r *Receiver) serveRecord(w http.ResponseWriter, req *http.Request) {
	body, rerr := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes))
	d := Delivery{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body,
		ID: req.Header.Get(webhook.HeaderWebhookID), Timestamp: req.Header.Get(webhook.HeaderWebhookTimestamp),
		Signature:         req.Header.Get(webhook.HeaderWebhookSignature),
		FraiseQLSignature: req.Header.Get(webhook.HeaderFraiseQLSig256), At: time.Now(), ReadErr: rerr}
	if r.opts.Secret != "" && rerr == nil {
		d.Scheme, d.SignatureErr = verify(r.opts.Secret, r.opts.Tolerance, &d)
	}
	r.mu.Lock()
	r.requests++
	d.Seq = r.requests
	if !r.opts.Discard {
		r.all = append(r.all, d)
	}
	r.mu.Unlock()
	if r.opts.Delay > 0 {
		time.Sleep(r.opts.Delay)
	}
	resp := r.respond(req.Context(), d)
	d.Status = cmp.Or(resp.Status, http.StatusOK)
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(d.Status)
	_, _ = w.Write(resp.Body)
	r.answered(d)
}

func verify(secret string, tolerance time.Duration, d *Delivery) (string, error) {
	if d.FraiseQLSignature != "" {
		return SchemeFraiseQL, webhook.VerifyFraiseQL(secret, d.FraiseQLSignature, d.Body, d.At, tolerance)
	}
	return SchemeStandard, webhook.VerifyStandard(secret, d.Header, d.Body, d.At, tolerance)
}

func (r *Receiver) respond(ctx context.Context, d Delivery) Response {
	if r.opts.Respond != nil {
		return r.opts.Respond(ctx, d)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(d.ReadErr, &tooLarge):
		return Response{Status: http.StatusRequestEntityTooLarge}
	case d.ReadErr != nil:
		return Response{Status: http.StatusBadRequest}
	case d.SignatureErr != nil:
		return Response{Status: http.StatusUnauthorized}
	}
	return Response{}
}

// answered records the status of d and, for a 2xx, the delivery.
func (r *Receiver) answered(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.opts.Discard {
		r.all[d.Seq-1].Status = d.Status
	}
	if d.Status < 200 || d.Status > 299 {
		return
	}
	if !r.opts.Discard {
		r.ok = append(r.ok, d)
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.noteLocked(r.count.Add(1), time.Now(), d.Body)
}

// noteLocked records the n-th 2xx answer, at now.
func (r *Receiver) noteLocked(n int64, now time.Time, body []byte) {
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	if r.opts.Track {
		if id := extractID(body); id != "" {
			if _, seen := r.arrived[id]; !seen {
				r.arrived[id] = now
			}
		}
	}
	if r.want > 0 && n == r.want {
		r.closeDoneLocked()
	}
}

func (r *Receiver) closeDoneLocked() {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
}

// extractID reads the value of the first "id" key of a small JSON body
// without decoding it; it allocates only the id.
func extractID(b []byte) string {
	i := bytes.Index(b, []byte(`"id":"`))
	if i < 0 {
		i = bytes.Index(b, []byte(`"id": "`))
		if i < 0 {
			return ""
		}
		i++
	}
	b = b[i+6:]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return ""
	}
	return string(b[:j])
}

// Count is the number of requests answered 2xx so far.
func (r *Receiver) Count() int64 { return r.count.Load() }

// FirstArrival is when the first 2xx answer was given (zero before).
func (r *Receiver) FirstArrival() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// LastArrival is when the latest 2xx answer was given (zero before).
func (r *Receiver) LastArrival() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Arrivals returns, with Track, the first arrival of each id seen (a copy).
func (r *Receiver) Arrivals() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.arrived)
}

// Expect arms Done to close once Count reaches n (at once when it already
// has). Call it before taking Done.
func (r *Receiver) Expect(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want = n
	r.done = make(chan struct{})
	if r.count.Load() >= n {
		r.closeDoneLocked()
	}
}

// Done is closed once Count reaches the number given to Expect.
func (r *Receiver) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// All returns every request received so far, in order of arrival, with the
// status answered (0 for one still being answered).
func (r *Receiver) All() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// Wait returns the next n deliveries answered 2xx that no earlier Wait
// returned, waiting for them until ctx ends.
func (r *Receiver) Wait(ctx context.Context, n int) ([]Delivery, error) {
	if r.opts.CountOnly || r.opts.Discard {
		return nil, errors.New("observertest: this receiver keeps no deliveries (CountOnly or Discard)")
	}
	for {
		r.mu.Lock()
		have := len(r.ok) - r.next
		if have >= n {
			got := slices.Clone(r.ok[r.next : r.next+n])
			r.next += n
			r.mu.Unlock()
			return got, nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, errors.Wrapf(ctx.Err(), "got %d of %d deliveries%s", have, n, r.failures())
		}
	}
}

// failures describes the requests not answered 2xx, for a failed wait.
func (r *Receiver) failures() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, d := range r.all {
		if d.Status != 0 && (d.Status < 200 || d.Status > 299) {
			bad = append(bad, describe(d))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d requests were answered otherwise, the last ones:\n  %s",
		len(bad), strings.Join(bad[max(0, len(bad)-5):], "\n  "))
}

func describe(d Delivery) string {
	s := fmt.Sprintf("#%d %s %s -> %d", d.Seq, d.Method, d.Path, d.Status)
	if d.SignatureErr != nil {
		s += " (" + d.Scheme + " signature: " + d.SignatureErr.Error() + ")"
	}
	if d.ReadErr != nil {
		s += " (body: " + d.ReadErr.Error() + ")"
	}
	return s
}

// WaitN is Wait for a test: it fails the test unless n deliveries are
// answered 2xx within timeout.
func (r *Receiver) WaitN(t testing.TB, n int, timeout time.Duration) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got, err := r.Wait(ctx, n)
	if err != nil {
		t.Fatalf("receiver: within %s: %v", timeout, err)
	}
	return got
}

// Quiet fails the test when a delivery that no Wait returned is answered 2xx
// within d. It shows an absence; never use it to wait for something.
func (r *Receiver) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got, err := r.Wait(ctx, 1)
	switch {
	case err == nil:
		t.Fatalf("receiver: unexpected delivery %s to %s: %s", got[0].ID, got[0].Path, got[0].Body)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("receiver: %v", err)
	}
}
