package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A receiver may answer anything: any status, any Retry-After, any body
// (binary, huge, invalid UTF-8). Classification never panics, 4xx other
// than 408 and 429 is permanent and everything else transient, a
// Retry-After is honoured within [0, 24h], and the message quotes at most
// a short single-line excerpt of the body.
func FuzzClassifyResponse(f *testing.F) {
	f.Add(500, "", []byte("oops"))
	f.Add(429, "7", []byte(`{"error": "slow down"}`))
	f.Add(503, "Wed, 21 Oct 2099 07:28:00 GMT", []byte{})
	f.Add(404, "3", []byte("not found\n\nsecond line"))
	f.Add(408, "-1", []byte(strings.Repeat("é", 300)))
	f.Add(999, "99999999999999999999", []byte{0xff, 0xfe, 0x00})
	f.Add(0, " 120 ", []byte(strings.Repeat("x", bodyExcerptMax)))
	f.Fuzz(func(t *testing.T, code int, retryAfter string, body []byte) {
		if len(body) > bodyExcerptMax { // readAndDrain never passes more
			body = body[:bodyExcerptMax]
		}
		resp := &http.Response{StatusCode: code, Status: strconv.Itoa(code) + " " + http.StatusText(code),
			Header: http.Header{"Retry-After": []string{retryAfter}}}
		de := statusError("webhook", "POST https://example.com/hook", resp, body)
		wantPermanent := code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
		if de.Permanent != wantPermanent {
			t.Fatalf("status %d: permanent = %v", code, de.Permanent)
		}
		if de.StatusCode != code {
			t.Fatalf("status %d recorded as %d", code, de.StatusCode)
		}
		if de.RetryAfter < 0 || de.RetryAfter > retryAfterMax || (de.Permanent && de.RetryAfter != 0) {
			t.Fatalf("Retry-After %q gave %s", retryAfter, de.RetryAfter)
		}
		msg := de.Error()
		if strings.Contains(msg, "\n") {
			t.Fatalf("the message spans lines: %q", msg)
		}
		if len(msg) > 1024 {
			t.Fatalf("the message is %d bytes", len(msg))
		}
		if !utf8.ValidString(errorExcerpt(body)) {
			t.Fatalf("the excerpt is not valid UTF-8")
		}
		_ = parseRetryAfter(retryAfter, time.Now())
	})
}
