package river

import (
	"context"
	"sync"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// typeLimits bounds the actions of each type that run at once in this
// process (concurrency.max_parallelism and queues:). River's queue size
// bounds jobs; a batch job runs many deliveries, so deliveries take a slot
// here too, whether they run in their own job or in a batch.
type typeLimits struct {
	cfg observers.ConcurrencyConfig

	mu    sync.Mutex
	slots map[string]chan struct{}
}

// newTypeLimits returns nil (no limit beyond River's) when cfg is nil.
func newTypeLimits(cfg *observers.ConcurrencyConfig) *typeLimits {
	if cfg == nil {
		return nil
	}
	return &typeLimits{cfg: *cfg, slots: map[string]chan struct{}{}}
}

// acquire waits for a slot of actionType; release gives it back.
func (l *typeLimits) acquire(ctx context.Context, actionType string) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.mu.Lock()
	ch := l.slots[actionType]
	if ch == nil {
		ch = make(chan struct{}, l.cfg.MaxWorkers(actionType))
		l.slots[actionType] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
