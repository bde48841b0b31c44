package observertest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/observertest"
)

const (
	secret      = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_QW5vdGhlciBzZWNyZXQgb2YgMjQgYnl0ZXM="
)

// post sends body to url with Standard Webhooks headers signed with key
// (none when key is ""), or with FraiseQL's header when fraiseql is set.
func post(t *testing.T, url, key string, fraiseql bool, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	require.NoError(t, err)
	now := time.Now()
	req.Header.Set(webhook.HeaderWebhookID, "msg_1")
	req.Header.Set(webhook.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	switch {
	case key != "" && fraiseql:
		req.Header.Set(webhook.HeaderFraiseQLSig256, webhook.SignFraiseQL(key, now, []byte(body)))
	case key != "":
		sig, err := webhook.SignStandard(key, "msg_1", now, []byte(body))
		require.NoError(t, err)
		req.Header.Set(webhook.HeaderWebhookSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp
}

// A receiver with a secret answers 401 to a signature made with another
// secret, and only the valid deliveries are waited for.
func TestReceiverVerifiesSignatures(t *testing.T) {
	t.Parallel()
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: secret})

	require.Equal(t, http.StatusUnauthorized, post(t, recv.URL()+"/bad", otherSecret, false, `{"n":1}`).StatusCode)
	require.Equal(t, http.StatusUnauthorized, post(t, recv.URL()+"/bad", otherSecret, true, `{"n":2}`).StatusCode)
	require.Equal(t, http.StatusUnauthorized, post(t, recv.URL()+"/unsigned", "", false, `{"n":3}`).StatusCode)
	require.Equal(t, http.StatusOK, post(t, recv.URL()+"/standard", secret, false, `{"n":4}`).StatusCode)
	require.Equal(t, http.StatusOK, post(t, recv.URL()+"/fraiseql", secret, true, `{"n":5}`).StatusCode)

	got := recv.WaitN(t, 2, 5*time.Second)
	require.Equal(t, "/standard", got[0].Path)
	require.Equal(t, observertest.SchemeStandard, got[0].Scheme)
	require.NoError(t, got[0].SignatureErr)
	require.Equal(t, "msg_1", got[0].ID)
	require.Equal(t, "/fraiseql", got[1].Path)
	require.Equal(t, observertest.SchemeFraiseQL, got[1].Scheme)
	require.Equal(t, int64(2), recv.Count())

	all := recv.All()
	require.Len(t, all, 5)
	for i, d := range all[:3] {
		require.Equal(t, i+1, d.Seq)
		require.Equal(t, http.StatusUnauthorized, d.Status)
		require.True(t, errors.Is(d.SignatureErr, webhook.ErrSignature), "%v", d.SignatureErr)
	}
	require.Equal(t, observertest.SchemeFraiseQL, all[1].Scheme)

	// A wait that cannot be met names the rejected requests.
	msg := fatal(t, func(tb testing.TB) { recv.WaitN(tb, 1, 100*time.Millisecond) })
	require.Contains(t, msg, "got 0 of 1 deliveries")
	require.Contains(t, msg, "#3 POST /unsigned -> 401 (standard signature: missing webhook-id")
}

// Respond chooses status and headers per request and may block until the
// client gives up; Quiet fails on an unexpected delivery.
func TestReceiverRespondAndQuiet(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(ctx context.Context, d observertest.Delivery) observertest.Response {
			switch d.Path {
			case "/busy":
				return observertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"30"}}}
			case "/hang":
				select {
				case <-ctx.Done():
				case <-release:
				}
				return observertest.Response{Status: http.StatusServiceUnavailable}
			}
			return observertest.Response{Body: []byte("fine")}
		},
	})
	resp := post(t, recv.URL()+"/busy", "", false, `{}`)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "30", resp.Header.Get("Retry-After"))

	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := client.Post(recv.URL()+"/hang", "application/json", bytes.NewBufferString(`{}`))
	require.Error(t, err, "the receiver hangs until the client gives up")
	require.Eventually(t, func() bool {
		all := recv.All()
		return len(all) == 2 && all[1].Status == http.StatusServiceUnavailable
	},
		5*time.Second, 10*time.Millisecond, "the hanging handler ends with the client's request")

	recv.Quiet(t, 50*time.Millisecond)
	require.Equal(t, http.StatusOK, post(t, recv.URL()+"/ok", "", false, `{}`).StatusCode)
	msg := fatal(t, func(tb testing.TB) { recv.Quiet(tb, time.Second) })
	require.Contains(t, msg, "unexpected delivery msg_1 to /ok")
	close(release)
}

// The lean mode counts, tracks first arrivals by id and closes Done at the
// expected count.
func TestReceiverCountOnly(t *testing.T) {
	t.Parallel()
	_, err := observertest.ListenReceiver(observertest.ReceiverOptions{CountOnly: true, Secret: secret})
	require.Error(t, err, "CountOnly does not verify")

	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{CountOnly: true, Track: true})
	recv.Expect(20)
	done := recv.Done()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			resp, err := http.Post(recv.URL(), "application/json", strings.NewReader(fmt.Sprintf(`{"id":"e-%d","n":%d}`, i%10, i)))
			if err == nil {
				err = resp.Body.Close()
			}
			errs <- err
		})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("done not closed; count %d", recv.Count())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(20), recv.Count())
	arrivals := recv.Arrivals()
	require.Len(t, arrivals, 10)
	for _, at := range arrivals {
		require.False(t, at.Before(recv.FirstArrival()))
		require.False(t, at.After(recv.LastArrival()))
	}
	recv.Expect(20)
	select {
	case <-recv.Done():
	default:
		t.Fatal("Expect of a count already reached closes Done at once")
	}
	_, err = recv.Wait(context.Background(), 1)
	require.Error(t, err, "CountOnly keeps no deliveries")
}
