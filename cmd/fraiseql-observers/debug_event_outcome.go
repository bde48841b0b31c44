package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/resultcache"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// outcomeView is what became of a change, in one line.
type outcomeView struct {
	// Status is delivered, pending, failed, dead (the worst delivery wins),
	// not_read, skipped, no_match, duplicate or unknown.
	Status  string `json:"status"`
	Matched int    `json:"matched"` // observers matched
	Summary string `json:"summary"`
}

// deliveryStatusOrder ranks delivery statuses, worst last.
var deliveryStatusOrder = []string{"delivered", "pending", "failed", "dead"}

func (f *eventFacts) outcome(dd dedupView) outcomeView {
	n := f.matched()
	o := outcomeView{Matched: n}
	matched := "matched " + plural(n, "observer", "observers")
	switch {
	case len(f.skips) > 0:
		o.Status, o.Summary = "skipped", "skipped: "+f.skips[0].Reason
	case len(f.dels) > 0:
		counts := map[string]int{}
		for _, d := range f.dels {
			counts[deliveryStatus(d.State)]++
		}
		var parts []string
		for _, s := range deliveryStatusOrder {
			if counts[s] > 0 {
				o.Status = s
				parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			}
		}
		o.Summary = matched + ": " + strings.Join(parts, ", ")
	case f.read.State != "read":
		o.Status, o.Summary = "not_read", "not read yet"
		switch {
		case f.read.State == "no_checkpoint":
			o.Summary += fmt.Sprintf(" (listener %q has never run)", f.read.ListenerID)
		case f.read.HeldByHorizon:
			o.Summary += " (an older transaction is still open)"
		}
		if f.found.Reason != "" {
			o.Summary += "; the listener will skip it: " + f.found.Reason
		}
	case f.found.Reason != "":
		o.Status, o.Summary = "skipped", "skipped: "+f.found.Reason+" (no record in observer_skipped_events)"
	case f.choice.cfg == nil:
		o.Status, o.Summary = "unknown", "no deliveries and no configuration to match against"
	case n == 0:
		o.Status, o.Summary = "no_match", "matched no observer"
	case dd.Outcome == "duplicate":
		o.Status, o.Summary = "duplicate", fmt.Sprintf("%s; not delivered: a duplicate of change %d", matched, dd.DuplicateOfPK)
	default:
		o.Status, o.Summary = "unknown", matched+"; no delivery is held ("+completedJobsGone(f.choice.cfg)+")"
	}
	return o
}

// dedupView is what deduplication did with the change.
type dedupView struct {
	Enabled bool   `json:"enabled"`
	Backend string `json:"backend,omitempty"`
	Window  string `json:"window,omitempty"`
	Key     string `json:"key,omitempty"` // "<listener id>/<content hash>" (observers.DedupKey)
	// Outcome is off, not_consulted (dedup sees only matched changes the
	// listener read), claimed (its deliveries were enqueued), duplicate
	// (another change with the same content claimed the key first) or
	// unknown.
	Outcome       string     `json:"outcome"`
	DuplicateOfPK int64      `json:"duplicate_of_pk,omitempty"`
	DuplicateOfID string     `json:"duplicate_of_id,omitempty"`
	KeyHeld       *bool      `json:"key_held,omitempty"` // postgres: the key is held now
	KeyExpiresAt  *time.Time `json:"key_expires_at,omitempty"`
	Note          string     `json:"note,omitempty"`
}

// dedupCandidates bounds the changes of the same entity compared.
const dedupCandidates = 50

func (e *debugEnv) dedup(ctx context.Context, f *eventFacts) (dedupView, error) {
	cfg, ev := f.choice.cfg, f.found.Event
	if cfg == nil {
		return dedupView{Outcome: "unknown", Note: "no configuration says whether dedup was on"}, nil
	}
	d := cfg.Dedup
	if !d.Enabled {
		return dedupView{Outcome: "off"}, nil
	}
	v := dedupView{Enabled: true, Backend: d.Backend, Window: observers.ShortDuration(d.Window),
		Key: cfg.Listener.ID + "/" + observers.DedupKey(ev)}
	if d.Backend == observers.BackendPostgres {
		row, err := dbsqlc.New(e.pool).DedupKeyGet(ctx, v.Key)
		if err != nil {
			return v, withExitCode(exitFailure, errors.Wrap(err, "read the dedup key"))
		}
		v.KeyHeld = &row.Held
		if row.Found {
			v.KeyExpiresAt = &row.ExpiresAt
		}
	} else {
		v.Note = "the key lives in Redis and is not read here; the outcome is inferred from the deliveries. "
	}
	switch {
	case f.found.Reason != "" || len(f.skips) > 0 || f.read.State != "read" || f.matched() == 0:
		v.Outcome = "not_consulted"
		v.Note += "dedup sees only the changes the listener read that matched an observer"
		return v, nil
	case len(f.dels) > 0:
		v.Outcome = "claimed"
		v.Note += "its deliveries were enqueued: the key was fresh (or the backend failed under on_error: process)"
		return v, nil
	}
	return e.dedupTwin(ctx, f, v)
}

// dedupTwin looks for the change that claimed the key instead: one of the
// same content, within the window, that has deliveries.
func (e *debugEnv) dedupTwin(ctx context.Context, f *eventFacts, v dedupView) (dedupView, error) {
	ev, window := f.found.Event, f.choice.cfg.Dedup.Window
	slack := time.Minute // created_at is the writer's clock; the claim happens when the listener reads
	near, err := e.log.SameEntity(ctx, e.pool, ev.EntityType, ev.EntityID,
		ev.CreatedAt.Add(-window-slack), ev.CreatedAt.Add(window+slack), dedupCandidates)
	if err != nil {
		return v, withExitCode(exitFailure, err)
	}
	var twins []int64
	ids := map[int64]string{}
	for _, c := range near {
		if c.Event.Seq != ev.Seq && c.Reason == "" && observers.DedupKey(c.Event) == observers.DedupKey(ev) {
			twins = append(twins, c.Event.Seq)
			ids[c.Event.Seq] = c.Event.ID
		}
	}
	dels, err := e.deliveries(ctx, twins)
	if err != nil {
		return v, err
	}
	if len(dels) > 0 {
		v.Outcome, v.DuplicateOfPK, v.DuplicateOfID = "duplicate", dels[0].Seq, ids[dels[0].Seq]
		v.Note += fmt.Sprintf("change %d has the same content and its deliveries were enqueued", dels[0].Seq)
		return v, nil
	}
	v.Outcome = "unknown"
	if len(twins) > 0 {
		v.Note += fmt.Sprintf("changes %v have the same content within the window, but none holds deliveries; ", twins)
	}
	v.Note += "no delivery is held: " + completedJobsGone(f.choice.cfg)
	return v, nil
}

// resultCacheView is what the result cache holds for the change's entity.
type resultCacheView struct {
	Enabled bool   `json:"enabled"`
	Backend string `json:"backend,omitempty"`
	TTL     string `json:"ttl,omitempty"`
	// Entries are the live cached results of the entity's requests
	// (postgres backend; the key hashes the whole request, so they may
	// belong to another change of the entity).
	Entries []cacheEntryView `json:"entries"`
	Note    string           `json:"note,omitempty"`
}

type cacheEntryView struct {
	ActionType string    `json:"action_type"`
	Status     int       `json:"status,omitempty"`
	SavedAt    time.Time `json:"saved_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// SavedByJob is the delivery job whose attempt saved it (its time falls
	// within the attempt): that delivery was sent, not answered from the
	// cache. 0 when none of this change's deliveries did.
	SavedByJob int64 `json:"saved_by_job,omitempty"`
}

// cacheEntriesMax bounds the entries listed per action type.
const cacheEntriesMax = 20

func (e *debugEnv) resultCache(ctx context.Context, f *eventFacts) (resultCacheView, error) {
	v := resultCacheView{Entries: []cacheEntryView{}}
	cfg := f.choice.cfg
	if cfg == nil {
		v.Note = "no configuration says whether the result cache was on"
		return v, nil
	}
	if !cfg.Cache.Enabled {
		v.Note = "off: every delivery attempt was sent"
		return v, nil
	}
	v.Enabled, v.Backend, v.TTL = true, cfg.Cache.Backend, observers.ShortDuration(cfg.Cache.TTL)
	v.Note = "a completed delivery was either sent or answered from the cache (an identical request succeeded within the TTL); the job does not record which"
	if cfg.Cache.Backend != observers.BackendPostgres {
		v.Note += "; the Redis cache is not read here"
		return v, nil
	}
	ev := f.found.Event
	for _, typ := range f.actionTypes() {
		rows, err := dbsqlc.New(e.pool).CacheEntriesByPrefix(ctx, dbsqlc.CacheEntriesByPrefixParams{
			Prefix: "action:" + typ + ":" + ev.EntityType + ":" + ev.EntityID + ":", MaxRows: cacheEntriesMax,
		})
		if err != nil {
			return v, withExitCode(exitFailure, errors.Wrap(err, "read the result cache"))
		}
		for _, r := range rows {
			status, at, err := resultcache.ParseResult(r.Value)
			if err != nil {
				continue
			}
			c := cacheEntryView{ActionType: typ, Status: status, SavedAt: at, ExpiresAt: r.ExpiresAt}
			for _, d := range f.dels {
				if d.ActionType == typ && d.AttemptedAt != nil && d.FinalizedAt != nil &&
					!at.Before(*d.AttemptedAt) && !at.After(*d.FinalizedAt) {
					c.SavedByJob = d.JobID
				}
			}
			v.Entries = append(v.Entries, c)
		}
	}
	return v, nil
}

// actionTypes lists the action types of the matched observers and of the
// deliveries, once each.
func (f *eventFacts) actionTypes() []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, x := range f.verdicts {
		if x.Matched() {
			for _, a := range x.Observer.Actions {
				add(a.Type())
			}
		}
	}
	for _, d := range f.dels {
		add(d.ActionType)
	}
	return out
}

// completedJobsGone says when completed jobs are deleted under cfg's
// retention: block (the default without a configuration).
func completedJobsGone(cfg *observers.Config) string {
	period := observers.RetentionCompletedJobsDefault
	if cfg != nil && cfg.Retention.CompletedJobs != 0 {
		period = cfg.Retention.CompletedJobs
	}
	if period == observers.RetentionOff {
		return "completed jobs are kept (retention.completed_jobs: off), so none was enqueued for this change"
	}
	return "completed jobs are deleted after " + observers.ShortDuration(period) + " (retention.completed_jobs)"
}
