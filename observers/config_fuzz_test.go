package observers_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// fuzzParseMax is the largest input FuzzParseConfig parses: past it, it
// only checks the input is refused for its size when over the limit (the
// YAML parser's cost near the 1 MiB limit is measured by the unit tests,
// not re-paid for every mutation).
const fuzzParseMax = 64 << 10

// FuzzParseConfig decodes arbitrary bytes as a configuration file: no
// panic, no hang, an answer that is consistent (a Config, or an error with
// at least one error diagnostic), diagnostics bounded and inside the file,
// and a file over the size limit refused unread. The seed corpus is
// testdata/fuzz/FuzzParseConfig (the bombs of issue #11, deep nesting,
// invalid UTF-8, …) and the seeds added here.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalObserver))
	f.Add([]byte(minimalObserver + strings.Repeat("#", observers.ConfigMaxBytesDefault)))
	f.Add([]byte("listener: " + strings.Repeat("[", observers.ConfigMaxBytesDefault)))
	f.Add([]byte(strings.Repeat("k: 1\n", observers.ConfigMaxBytesDefault/5+1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > observers.ConfigMaxBytesDefault {
			_, diags, err := observers.ParseConfig(context.Background(), "fuzz.yaml", data, observers.LoadOptions{Getenv: noEnv})
			if err == nil || len(diags) != 1 || !strings.Contains(diags[0].Message, "larger than 1 MiB") {
				t.Fatalf("a file over the limit is refused for its size, got %v %v", err, diags)
			}
			return
		}
		if len(data) > fuzzParseMax {
			t.Skip("parsed by the unit tests at this size")
		}
		start := time.Now()
		cfg, diags, err := observers.ParseConfig(context.Background(), "fuzz.yaml", data, observers.LoadOptions{Getenv: noEnv})
		if d := time.Since(start); d > fuzzSlow {
			t.Fatalf("parsing %d bytes took %s", len(data), d)
		}
		if (cfg == nil) != (err != nil) {
			t.Fatalf("a Config or an error: cfg %v, err %v", cfg != nil, err)
		}
		if err != nil && !diags.HasErrors() {
			t.Fatalf("an error without an error diagnostic: %v", err)
		}
		if err == nil && diags.HasErrors() {
			t.Fatalf("error diagnostics without an error: %v", diags)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, d := range diags {
			if utf8.RuneCountInString(d.Message) > 1000 || utf8.RuneCountInString(d.Hint) > 1000 {
				t.Fatalf("diagnostic too long: %.200s", d.Message)
			}
			if d.File != "fuzz.yaml" || d.Line < 0 || d.Line > lines+1 || d.Column < 0 {
				t.Fatalf("diagnostic outside the file (%d lines): %s", lines, d)
			}
		}
	})
}

func noEnv(string) (string, bool) { return "", false }

// fuzzSlow is how long one fuzzed input may take: far more than any
// bounded one needs (milliseconds), far less than a hang.
const fuzzSlow = 10 * time.Second
