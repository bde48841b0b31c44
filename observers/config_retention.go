package observers

// Decoding of the retention: block (config_decode.go holds the rest of the
// loader). The retention package deletes what it allows.

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// RetentionOff is the period of a table whose rows are kept forever: "off"
// (or 0) in the file.
const RetentionOff time.Duration = -1

// Defaults of the retention: block.
const (
	// RetentionChangeLogDefault keeps the change log: it may be the
	// application's own history (FraiseQL's table), which nobody expects
	// a default to delete.
	RetentionChangeLogDefault = RetentionOff
	// RetentionCompletedJobsDefault is River's own default for completed
	// jobs, which the observer used before retention: existed.
	RetentionCompletedJobsDefault = 24 * time.Hour
	// RetentionDeadLettersDefault keeps cancelled and discarded deliveries
	// (the dead-letter queue) for 30 days.
	RetentionDeadLettersDefault = 30 * 24 * time.Hour
	// RetentionSkippedEventsDefault keeps observer_skipped_events for 30
	// days.
	RetentionSkippedEventsDefault = 30 * 24 * time.Hour
	// RetentionAuditDefault keeps the audit trail in Postgres for 30 days,
	// as the Elasticsearch backend's ILM policy does.
	RetentionAuditDefault = 30 * 24 * time.Hour
)

// The keys of the retention: block, which are also the table label of
// observer_retention_deleted_total.
const (
	RetentionChangeLog     = "change_log"
	RetentionCompletedJobs = "completed_jobs"
	RetentionDeadLetters   = "dead_letters"
	RetentionSkippedEvents = "skipped_events"
	RetentionAudit         = "audit"
)

// RetentionSearchTombstones is the table label of the search documents'
// tombstones (a DELETE's version, kept so that an older change cannot
// bring the document back), pruned after retention.audit; not a key.
const RetentionSearchTombstones = "search_tombstones"

var retentionKeys = []string{RetentionChangeLog, RetentionCompletedJobs, RetentionDeadLetters, RetentionSkippedEvents, RetentionAudit}

// RetentionConfig is the retention: block: how long finished rows are kept
// before a River periodic job deletes them. Each period is positive, or
// RetentionOff.
type RetentionConfig struct {
	// ChangeLog is the age after which a row of listener.table is deleted,
	// once the checkpoint of every listener group reading the table has
	// passed it and no unfinished delivery (dead letters included) refers
	// to it. Default RetentionOff.
	ChangeLog time.Duration
	// CompletedJobs is the age (since they finished) after which completed
	// River jobs are deleted. Default 24h.
	CompletedJobs time.Duration
	// DeadLetters is the age after which cancelled and discarded River
	// jobs (the dead-letter queue) are deleted. Default 30d.
	DeadLetters time.Duration
	// SkippedEvents is the age after which observer_skipped_events rows
	// are deleted. Default 30d.
	SkippedEvents time.Duration
	// Audit is the age (of the record's timestamp) after which rows of the
	// Postgres audit trail (observer_audit) are deleted, and (of their
	// last write) after which the search documents' tombstones are.
	// Default 30d.
	Audit time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c RetentionConfig) WithDefaults() RetentionConfig {
	c.ChangeLog = cmp.Or(c.ChangeLog, RetentionChangeLogDefault)
	c.CompletedJobs = cmp.Or(c.CompletedJobs, RetentionCompletedJobsDefault)
	c.DeadLetters = cmp.Or(c.DeadLetters, RetentionDeadLettersDefault)
	c.SkippedEvents = cmp.Or(c.SkippedEvents, RetentionSkippedEventsDefault)
	c.Audit = cmp.Or(c.Audit, RetentionAuditDefault)
	return c
}

// RetentionPeriod is one table's period.
type RetentionPeriod struct {
	Table  string        // RetentionChangeLog, ..., RetentionSearchTombstones
	Period time.Duration // positive, or RetentionOff
}

// Periods lists every table's period, in the order retention works them:
// the jobs first (deleting a dead letter lets its change-log row go), then
// the change log, then the audit trail and the search documents'
// tombstones, which depend on nothing else.
func (c RetentionConfig) Periods() []RetentionPeriod {
	return []RetentionPeriod{
		{RetentionCompletedJobs, c.CompletedJobs},
		{RetentionDeadLetters, c.DeadLetters},
		{RetentionSkippedEvents, c.SkippedEvents},
		{RetentionChangeLog, c.ChangeLog},
		{RetentionAudit, c.Audit},
		{RetentionSearchTombstones, c.Audit},
	}
}

// FormatRetention writes a period as the file would: off, 30d, 36h, 90m.
func FormatRetention(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d <= 0:
		return "off"
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	}
	return ShortDuration(d)
}

const retentionHint = "use a period such as 30d, 1w or 24h, or off to keep the rows forever"

func (l *loader) retentionBlock(e entry) RetentionConfig {
	var c RetentionConfig
	fields, _ := l.mapping(e.value, e.keyN, "retention", retentionKeys)
	for _, f := range fields {
		p := l.retentionPeriod(f, "retention."+f.key)
		switch f.key {
		case RetentionChangeLog:
			c.ChangeLog = p
		case RetentionCompletedJobs:
			c.CompletedJobs = p
		case RetentionDeadLetters:
			c.DeadLetters = p
		case RetentionSkippedEvents:
			c.SkippedEvents = p
		case RetentionAudit:
			c.Audit = p
		}
	}
	return c
}

// retentionPeriod reads a positive duration (d and w units too), or off,
// 0 or false (YAML 1.1 reads off as false) for RetentionOff; 0 (the
// default) when the value is reported.
func (l *loader) retentionPeriod(f entry, where string) time.Duration {
	v := l.resolve(f.value)
	switch x := v.(type) {
	case *ast.BoolNode:
		if !x.Value {
			return RetentionOff
		}
		l.errorf(f.value, fmt.Sprintf("%s must be a period, got %s", where, typeName(v)), retentionHint)
		return 0
	case *ast.IntegerNode, *ast.FloatNode:
		if scalarText(v) == "0" {
			return RetentionOff
		}
		l.errorf(f.value, fmt.Sprintf("%s: %s has no unit", where, scalarText(v)), retentionHint)
		return 0
	}
	if isNull(v) || !isScalar(v) {
		l.errorf(cmpNode(f.value, f.keyN), fmt.Sprintf("%s must be a period, got %s", where, typeName(v)), retentionHint)
		return 0
	}
	s := strings.TrimSpace(scalarText(v))
	if strings.EqualFold(s, "off") || s == "0" {
		return RetentionOff
	}
	d, err := ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(f.value, fmt.Sprintf("invalid period %s for %s", QuoteShort(s), where), retentionHint)
		return 0
	case d <= 0:
		l.errorf(f.value, fmt.Sprintf("%s must be positive, got %s", where, s), retentionHint)
		return 0
	}
	return d
}
