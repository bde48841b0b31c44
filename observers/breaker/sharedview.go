package breaker

import (
	"encoding/json"

	"github.com/sony/gobreaker/v2"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// sharedView is the gobreaker.SharedDataStore that a breaker's
// DistributedCircuitBreaker sees. The registry takes the real lock and reads
// the store itself (gobreaker reads before it locks), so the view's lock is a
// no-op and its data is the copy of one flush. A full sample is halved here,
// since gobreaker offers no hook for it. Only the flusher uses it.
type sharedView struct {
	b       *breaker
	initial []byte // gobreaker's fresh state, used when the store has none
	buf     []byte
	st      gobreaker.SharedState
	dirty   bool
}

var _ gobreaker.SharedDataStore = (*sharedView)(nil)

func (v *sharedView) Lock(string) error   { return nil }
func (v *sharedView) Unlock(string) error { return nil }

func (v *sharedView) GetData(string) ([]byte, error) {
	if v.buf != nil && v.st.State == gobreaker.StateClosed && v.st.Counts.Requests >= uint32(v.b.cfg.SampleSize) {
		halve(&v.st)
		v.buf, _ = json.Marshal(v.st)
	}
	return v.buf, nil
}

// halve divides every count of a closed breaker's sample by two. Outcomes
// are recorded as soon as they are requested, so a bucket's requests are its
// successes, failures and exclusions.
func halve(st *gobreaker.SharedState) {
	total := gobreaker.Counts{
		ConsecutiveSuccesses: st.Counts.ConsecutiveSuccesses / 2,
		ConsecutiveFailures:  st.Counts.ConsecutiveFailures / 2,
	}
	for i := range st.Buckets {
		c := &st.Buckets[i]
		c.TotalSuccesses, c.TotalFailures, c.TotalExclusions = c.TotalSuccesses/2, c.TotalFailures/2, c.TotalExclusions/2
		c.ConsecutiveSuccesses, c.ConsecutiveFailures = c.ConsecutiveSuccesses/2, c.ConsecutiveFailures/2
		c.Requests = c.TotalSuccesses + c.TotalFailures + c.TotalExclusions
		total.Requests += c.Requests
		total.TotalSuccesses += c.TotalSuccesses
		total.TotalFailures += c.TotalFailures
		total.TotalExclusions += c.TotalExclusions
	}
	st.Counts = total
}

func (v *sharedView) SetData(_ string, data []byte) error {
	v.buf, v.dirty = data, true
	return json.Unmarshal(data, &v.st)
}

// load starts a flush from the store's state.
func (v *sharedView) load(store storage.BreakerStore) error {
	st, err := v.read(store)
	if err != nil {
		return err
	}
	v.st, v.dirty = st, false
	v.buf, err = json.Marshal(st)
	return err
}

// read returns the store's state, or a fresh one when it has none (or an
// unusable one).
func (v *sharedView) read(store storage.BreakerStore) (gobreaker.SharedState, error) {
	var st gobreaker.SharedState
	data, err := store.GetData(stateKey(v.b.name))
	if err != nil {
		return st, err
	}
	if len(data) == 0 || json.Unmarshal(data, &st) != nil || len(st.Buckets) == 0 {
		st = gobreaker.SharedState{}
		err = json.Unmarshal(v.initial, &st)
	}
	return st, err
}
