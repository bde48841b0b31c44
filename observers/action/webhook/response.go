package webhook

import (
	"io"
	"sync/atomic"
	"time"
)

// Why a response body was not read to its end (Metrics.Cut's reason).
const (
	cutSize = "size"
	cutTime = "time"
)

// readBody reads a response body within its limits and closes it: the
// first bodyExcerptMax bytes (at most maxBytes) are returned; the rest, up
// to maxBytes in all, is read and discarded so the connection can be
// reused. A longer body, or one still unread readTimeout after the
// headers (cancel then aborts the request's reads), is cut, which drops the
// connection; cut says why ("" when read whole). Read errors only shorten
// the excerpt: the status decides the outcome.
func readBody(body io.ReadCloser, maxBytes int64, readTimeout time.Duration, cancel func()) (excerpt []byte, cut string) {
	defer body.Close()
	var late atomic.Bool
	timer := time.AfterFunc(readTimeout, func() { late.Store(true); cancel() })
	defer timer.Stop()
	excerpt, err := io.ReadAll(io.LimitReader(body, min(bodyExcerptMax, maxBytes)))
	if err == nil {
		rest := maxBytes - int64(len(excerpt))
		var n int64
		// One byte past the limit tells a body that ends there from a
		// longer one.
		n, err = io.CopyN(io.Discard, body, rest+1)
		if err == nil && n > rest {
			return excerpt, cutSize
		}
	}
	if err != nil && err != io.EOF && late.Load() {
		return excerpt, cutTime
	}
	return excerpt, ""
}
