package elasticsearch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// maxBulkBytes bounds one _bulk request; a larger Write is sent as
// several, one after the other.
const maxBulkBytes = 5 << 20

// bulkItem is a document to create: where, its _id and its source, or
// the error that kept it from being sent.
type bulkItem struct {
	index, id string
	src       []byte
	err       error
}

// bulkCreate creates items (op_type create) and reports each one's
// outcome before it returns.
//
// Each call has its own esutil.BulkIndexer: one worker, flushed by Close,
// its requests in the call's context (OnFlushStart), so the call's
// deadline and cancellation bound them, and the per-item callbacks of
// this call's items alone fill its results. An indexer shared between
// calls would flush in a background context and mix the items of
// concurrent calls in one request; the audit writer already batches, so a
// call is one request (up to maxBulkBytes) either way.
//
// A 409 version conflict means the _id exists: the record is stored
// already, a success. When every item failed because its request failed
// (no connection, an error status), the error is that request's;
// otherwise the failed items are a *storage.BulkError.
func (c *Client) bulkCreate(ctx context.Context, items []bulkItem) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var (
		mu       sync.Mutex
		results  = make([]error, len(items))
		answered = make([]bool, len(items))
		size     = 1024
	)
	set := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		results[i], answered[i] = err, true
	}
	for i, it := range items {
		if it.err != nil {
			set(i, it.err)
		}
		size += len(it.src) + len(it.index) + len(it.id) + 64
	}
	rec := &requestRecorder{next: c.es}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:        rec,
		NumWorkers:    1,
		FlushBytes:    min(size, maxBulkBytes),
		FlushInterval: time.Hour, // Close flushes
		OnFlushStart:  func(context.Context) context.Context { return ctx },
	})
	if err != nil {
		return errors.Wrap(err, "elasticsearch: audit: bulk indexer")
	}
	for i, it := range items {
		if it.err != nil {
			continue
		}
		err := bi.Add(ctx, esutil.BulkIndexerItem{
			Index: it.index, Action: "create", DocumentID: it.id, Body: bytes.NewReader(it.src),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) { set(i, nil) },
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				set(i, rec.itemError(it.id, res, err))
			},
		})
		if err != nil {
			break // the context ended: the items left are not sent
		}
	}
	if err := bi.Close(ctx); err != nil {
		return transportError("audit: bulk write", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return bulkOutcome(results, answered, ctx.Err())
}

// bulkOutcome is the error of a bulk write whose items ended with results
// (answered: the item has one).
func bulkOutcome(results []error, answered []bool, ctxErr error) error {
	var (
		failed       []storage.BulkItemError
		requestFails int
		requestErr   error
	)
	for i, err := range results {
		if !answered[i] {
			err = mark(errors.New("elasticsearch: audit: no result for the item (the request ended first)"), storage.ErrUnavailable)
			if ctxErr != nil {
				err = errors.Wrap(ctxErr, "elasticsearch: audit: bulk write")
			}
		}
		if err == nil {
			continue
		}
		failed = append(failed, storage.BulkItemError{Index: i, Err: err})
		var r *requestError
		if errors.As(err, &r) {
			requestFails++
			requestErr = r.err
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case requestFails == len(results):
		return requestErr
	}
	return &storage.BulkError{Failed: failed}
}

// requestError is an item's error when its whole request failed.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// requestRecorder passes requests to the client and keeps the last error
// answer, whose status esutil's flush error does not carry.
type requestRecorder struct {
	next interface {
		Perform(*http.Request) (*http.Response, error)
	}
	mu     sync.Mutex
	status int
	body   []byte
}

// Perform implements esapi.Transport.
func (r *requestRecorder) Perform(req *http.Request) (*http.Response, error) {
	res, err := r.next.Perform(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body = 0, nil // one worker: the items of this request are told before the next one starts
	if err != nil || res.StatusCode < 300 {
		return res, err
	}
	body, rerr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	r.status, r.body = res.StatusCode, body
	return res, rerr
}

// itemError is the error of an item that failed: in the bulk answer
// (res), or with its request (err).
func (r *requestRecorder) itemError(id string, res esutil.BulkIndexerResponseItem, err error) error {
	if err != nil {
		r.mu.Lock()
		status, body := r.status, r.body
		r.mu.Unlock()
		if status != 0 {
			return &requestError{statusError("audit: bulk write", status, body)}
		}
		return &requestError{transportError("audit: bulk write", err)}
	}
	if res.Status == http.StatusConflict && res.Error.Type == "version_conflict_engine_exception" {
		return nil // the record is there already
	}
	cause := errorCause{Type: res.Error.Type, Reason: res.Error.Reason}
	if res.Error.Cause.Reason != "" {
		cause.CausedBy = &errorCause{Type: res.Error.Cause.Type, Reason: res.Error.Cause.Reason}
	}
	return classify(errors.Wrapf(cause.asError(res.Status), "audit record %s in %s", cut(id, 64), res.Index), res.Status)
}
