package webhook

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// countingTransport counts the response body bytes a client consumed.
type countingTransport struct {
	next http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// endless answers status and then streams a body that never ends, at full
// speed, until the client goes away.
func endless(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

// trickle answers status at once and then sends one byte every 50ms, for
// ever.
func trickle(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.(http.Flusher).Flush()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}
}

// A receiver streaming an endless body costs a bounded read: the status
// decides, the first bytes are quoted, the rest is cut and the connection
// dropped.
func TestHostileEndlessBodyIsCut(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		recv := newWebhookReceiver(t, endless(status))
		client := loopbackClient()
		counter := &countingTransport{next: client.Transport}
		client.Transport = counter
		start := time.Now()
		resp, err := Send(context.Background(), client, Request{URL: recv.URL, MessageID: "m", Timeout: 20 * time.Second})
		elapsed := time.Since(start)
		if status == http.StatusOK {
			require.NoError(t, err)
		} else {
			de := requireDeliveryError(t, err)
			require.False(t, de.Permanent)
			require.Equal(t, status, de.StatusCode)
			require.Contains(t, err.Error(), `"xxxx`, "the start of the body is quoted")
		}
		require.Equal(t, status, resp.StatusCode)
		require.Len(t, resp.Body, bodyExcerptMax)
		require.LessOrEqual(t, counter.read.Load(), int64(64<<10)+1, "at most max_response_bytes (64 KiB by default) is read")
		require.Less(t, elapsed, 10*time.Second, "the endless body does not hold the request until its timeout")
	}
}

// A 2xx whose body trickles in frees the request once the body has had its
// read time (5s by default), not after the action's whole timeout; the
// answer is still a success.
func TestHostileTricklingBodyDoesNotHoldTheWorker(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, trickle(http.StatusOK))
	start := time.Now()
	resp, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m", Timeout: 40 * time.Second})
	require.NoError(t, err, "the status decides")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Less(t, time.Since(start), 20*time.Second, "held for the read time, not the 40s timeout")
}

// Whatever the read time, the action's timeout bounds the whole attempt.
func TestHostileTricklingBodyWithinTimeout(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, trickle(http.StatusServiceUnavailable))
	start := time.Now()
	_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m", Timeout: 500 * time.Millisecond})
	de := requireDeliveryError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, de.StatusCode)
	require.Less(t, time.Since(start), 5*time.Second, "the 500ms timeout bounds the body too")
}

// Response headers are bounded too: a receiver cannot make each request
// hold megabytes of them.
func TestHostileHugeHeadersAreRefused(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Bomb", strings.Repeat("b", 1<<20))
		w.WriteHeader(http.StatusOK)
	})
	_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m"})
	de := requireDeliveryError(t, err)
	require.False(t, de.Permanent, "retried, like a 5xx")
	require.Contains(t, err.Error(), "header")
}

// http.max_response_bytes and http.response_read_timeout are the limits a
// delivery passes; a cut body is counted by reason.
func TestResponseLimitsConfigured(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	client := NewHTTPClient(HTTPClientConfig{AllowPrivateTargets: true, Metrics: m})
	endlessRecv := newWebhookReceiver(t, endless(http.StatusOK))
	resp, err := Send(context.Background(), client, Request{URL: endlessRecv.URL, MessageID: "m", MaxResponseBytes: 100})
	require.NoError(t, err)
	require.Len(t, resp.Body, 100, "the excerpt is within the limit")
	require.InDelta(t, 1, counterValue(t, m.Cut.WithLabelValues(cutSize)), 0)

	slow := newWebhookReceiver(t, trickle(http.StatusOK))
	start := time.Now()
	_, err = Send(context.Background(), client, Request{URL: slow.URL, MessageID: "m", ResponseReadTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.InDelta(t, 1, counterValue(t, m.Cut.WithLabelValues(cutTime)), 0)

	short := newWebhookReceiver(t, respond(http.StatusOK, strings.Repeat("y", 100)))
	resp, err = Send(context.Background(), client, Request{URL: short.URL, MessageID: "m", MaxResponseBytes: 100})
	require.NoError(t, err)
	require.Len(t, resp.Body, 100)
	require.InDelta(t, 1, counterValue(t, m.Cut.WithLabelValues(cutSize)), 0, "a body of exactly the limit is read whole")
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, c.Write(&d))
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// concurrency.max_in_flight: a request that finds every slot taken waits,
// and is snoozed (nothing sent) when none frees up in time; a slot freed
// in time is taken.
func TestInFlightCap(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	client := NewHTTPClient(HTTPClientConfig{AllowPrivateTargets: true, MaxInFlight: 1, InFlightWait: time.Second, Metrics: m})
	arrived, release := make(chan struct{}, 10), make(chan struct{})
	recv := newWebhookReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, respond(http.StatusOK, "ok"))
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, err := Send(ctx, client, Request{URL: recv.URL, MessageID: "hang"})
		first <- err
	}()
	<-arrived
	require.InDelta(t, 1, counterValue(t, m.InFlight), 0)

	_, err := Send(ctx, client, Request{URL: recv.URL, MessageID: "waits"})
	var snooze *observers.SnoozeError
	require.ErrorAs(t, err, &snooze, "no slot freed up: snoozed")
	var full *InFlightFullError
	require.ErrorAs(t, err, &full)
	require.Equal(t, 1, full.Limit)
	require.EqualValues(t, 1, recv.hits.Load(), "nothing was sent")
	require.InDelta(t, 1, counterValue(t, m.Snoozed), 0)

	go func() { <-time.After(100 * time.Millisecond); close(release) }() // frees the slot while the next one waits (1s)
	_, err = Send(ctx, client, Request{URL: recv.URL, MessageID: "gets it"})
	require.NoError(t, err, "the slot freed in time is taken")
	require.NoError(t, <-first)
	require.InDelta(t, 0, counterValue(t, m.InFlight), 0)
}
