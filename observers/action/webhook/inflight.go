package webhook

import (
	"context"
	"strconv"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Defaults of the in-flight cap.
const (
	// InFlightWaitDefault bounds the wait for a free in-flight slot before
	// the delivery is snoozed. It runs before the attempt's own timeout, so
	// it must stay well inside the workers' margin (river's timeoutMargin).
	InFlightWaitDefault = 2 * time.Second
	// inFlightSnooze is how long a delivery that found no slot waits.
	inFlightSnooze = time.Second
)

// InFlightFullError says that every in-flight slot of the process stayed
// taken for the whole wait.
type InFlightFullError struct {
	Limit int
	Wait  time.Duration
}

func (e *InFlightFullError) Error() string {
	return "no free HTTP request slot: " + strconv.Itoa(e.Limit) + " requests (concurrency.max_in_flight) in flight for " + e.Wait.String()
}

// inFlight caps the requests in flight through one client.
type inFlight struct {
	slots   chan struct{}
	wait    time.Duration
	metrics *Metrics
}

func newInFlight(limit int, wait time.Duration, m *Metrics) *inFlight {
	if limit <= 0 {
		return nil
	}
	if wait <= 0 {
		wait = InFlightWaitDefault
	}
	return &inFlight{slots: make(chan struct{}, limit), wait: wait, metrics: m}
}

// acquire takes a slot, waiting up to f.wait; release gives it back. It
// returns an *observers.SnoozeError (wrapping an *InFlightFullError, or
// ctx's error) when none frees up in time or ctx ends: nothing was sent. A
// nil f has no cap.
func (f *inFlight) acquire(ctx context.Context) (release func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	select {
	case f.slots <- struct{}{}:
	default:
		t := time.NewTimer(f.wait)
		defer t.Stop()
		select {
		case f.slots <- struct{}{}:
		case <-t.C:
			f.metrics.Snoozed.Inc()
			return nil, &observers.SnoozeError{Until: time.Now().Add(inFlightSnooze),
				Err: &InFlightFullError{Limit: cap(f.slots), Wait: f.wait}}
		case <-ctx.Done():
			return nil, &observers.SnoozeError{Until: time.Now().Add(inFlightSnooze), Err: ctx.Err()}
		}
	}
	f.metrics.InFlight.Inc()
	return func() {
		f.metrics.InFlight.Dec()
		<-f.slots
	}, nil
}
