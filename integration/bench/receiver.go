package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is a keep-alive webhook endpoint on loopback. It verifies nothing:
// it counts deliveries, remembers the last arrival and, when track is set,
// the first arrival time of each id found in a body of the form {"id":"..."}.
type receiver struct {
	srv   *http.Server
	url   string
	count atomic.Int64
	delay time.Duration
	track bool

	mu      sync.Mutex
	first   time.Time
	last    time.Time
	arrived map[string]time.Time
	done    chan struct{}
	want    int64
}

func newReceiver(delay time.Duration, track bool) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), delay: delay, track: track, arrived: map[string]time.Time{}, done: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// expect arms done to close once n deliveries have arrived.
func (r *receiver) expect(n int64) {
	r.mu.Lock()
	r.want = n
	r.done = make(chan struct{})
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	now := time.Now()
	w.WriteHeader(http.StatusOK)
	n := r.count.Add(1)
	r.mu.Lock()
	if r.first.IsZero() {
		r.first = now
	}
	r.last = now
	if r.track {
		if id := extractID(body); id != "" {
			if _, seen := r.arrived[id]; !seen {
				r.arrived[id] = now
			}
		}
	}
	if r.want > 0 && n == r.want {
		close(r.done)
	}
	r.mu.Unlock()
}

// extractID reads the value of the first "id" key of a small JSON body
// without a full decode.
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

func (r *receiver) doneCh() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func (r *receiver) lastArrival() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *receiver) close() { _ = r.srv.Close() }
