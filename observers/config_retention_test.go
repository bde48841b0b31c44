package observers_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

const retentionObs = "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"

// The retention: block: periods with d and w units, off (or 0, or YAML
// 1.1's false) per table, defaults for the rest; the change log is kept
// unless the file says otherwise.
func TestConfigRetention(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	s := compileSchema(t)
	for src, want := range map[string]observers.RetentionConfig{
		"": {ChangeLog: observers.RetentionOff, CompletedJobs: day, DeadLetters: 30 * day, SkippedEvents: 30 * day, Audit: 30 * day},
		"retention: {change_log: 30d, completed_jobs: 7d, dead_letters: 30d, skipped_events: 30d}\n": {
			ChangeLog: 30 * day, CompletedJobs: 7 * day, DeadLetters: 30 * day, SkippedEvents: 30 * day, Audit: 30 * day},
		"retention: {change_log: 2w, completed_jobs: 36h}\n": {
			ChangeLog: 14 * day, CompletedJobs: 36 * time.Hour, DeadLetters: 30 * day, SkippedEvents: 30 * day, Audit: 30 * day},
		"retention: {completed_jobs: off, dead_letters: 0, skipped_events: 'OFF'}\n": {
			ChangeLog: observers.RetentionOff, CompletedJobs: observers.RetentionOff, DeadLetters: observers.RetentionOff,
			SkippedEvents: observers.RetentionOff, Audit: 30 * day},
		"retention: {dead_letters: false, change_log: 1d12h}\n": {
			ChangeLog: 36 * time.Hour, CompletedJobs: day, DeadLetters: observers.RetentionOff, SkippedEvents: 30 * day, Audit: 30 * day},
		"retention: {audit: 1w}\n": {ChangeLog: observers.RetentionOff, CompletedJobs: day, DeadLetters: 30 * day, SkippedEvents: 30 * day, Audit: 7 * day},
		"retention: {audit: off}\n": {ChangeLog: observers.RetentionOff, CompletedJobs: day, DeadLetters: 30 * day, SkippedEvents: 30 * day,
			Audit: observers.RetentionOff},
		"retention: {}\n": {ChangeLog: observers.RetentionOff, CompletedJobs: day, DeadLetters: 30 * day, SkippedEvents: 30 * day, Audit: 30 * day},
	} {
		cfg, diags, err := observers.Parse("r.yaml", []byte(src+retentionObs))
		require.NoError(t, err, "%s: %v", src, diags)
		require.Equal(t, want, cfg.Retention, src)
		require.NoError(t, schemaValidate(t, s, []byte(src+retentionObs)), "the schema accepts it: %s", src)
	}
	require.Equal(t, "30d", observers.FormatRetention(30*day))
	require.Equal(t, "36h", observers.FormatRetention(36*time.Hour))
	require.Equal(t, "1h30m", observers.FormatRetention(90*time.Minute))
	require.Equal(t, "off", observers.FormatRetention(observers.RetentionOff))
}

// Mistakes are reported at their place with a hint that names the units
// and off; the schema rejects them too.
func TestConfigRetentionErrors(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	hint := "use a period such as 30d, 1w or 24h, or off to keep the rows forever"
	for src, want := range map[string]struct{ msg, hint string }{
		"retention: {change_log: 30}\n":          {"x.yaml:1:25: retention.change_log: 30 has no unit", hint},
		"retention: {completed_jobs: 7 days}\n":  {`x.yaml:1:29: invalid period "7 days" for retention.completed_jobs`, hint},
		"retention: {dead_letters: -1d}\n":       {"x.yaml:1:27: retention.dead_letters must be positive, got -1d", hint},
		"retention: {skipped_events: true}\n":    {"x.yaml:1:29: retention.skipped_events must be a period, got a boolean", hint},
		"retention: {change_log: [30d]}\n":       {"x.yaml:1:25: retention.change_log must be a period, got a list", hint},
		"retention: {changelog: 30d}\n":          {`x.yaml:1:13: unknown key "changelog" in retention`, `did you mean "change_log"?`},
		"retention:\n  dead_letter: 30d\n":       {`x.yaml:2:3: unknown key "dead_letter" in retention`, `did you mean "dead_letters"?`},
		"retention: 30d\n":                       {"x.yaml:1:12: retention must be a mapping, got a string", ""},
		"retention: {skipped_events: ~}\n":       {"x.yaml:1:13: retention.skipped_events must be a period, got null", hint},
		"retention: {completed_jobs: 1.5}\n":     {"x.yaml:1:29: retention.completed_jobs: 1.5 has no unit", hint},
		"retention: {change_log: 0s}\n":          {"x.yaml:1:25: retention.change_log must be positive, got 0s", hint},
		"retention: {change_log: 3000000000w}\n": {`x.yaml:1:25: invalid period "3000000000w" for retention.change_log`, hint},
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src+retentionObs))
		require.Error(t, err, src)
		require.NotEmpty(t, diags.Errors(), src)
		d := diags.Errors()[0]
		require.Equal(t, want.msg, firstLine(d.String()), src)
		if want.hint != "" {
			require.Contains(t, d.Hint, want.hint, src)
		}
		if src != "retention: {change_log: 0s}\n" && src != "retention: {change_log: 3000000000w}\n" { // values, not syntax
			require.Error(t, schemaValidate(t, s, []byte(src+retentionObs)), "the schema rejects it too: %s", src)
		}
	}
}
