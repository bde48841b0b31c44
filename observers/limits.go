package observers

import "fmt"

// Limits on the work a configuration, a condition or a template can ask
// for. Each input is bounded before the step that could grow with it.

// The configuration file: its size before it is read whole, its nesting
// and the keys of a mapping before the YAML parser sees them (the parser's
// time and memory grow with their square), the nodes aliases and merge
// keys produce while it is decoded. Each observers_table row is held to
// the same limits as a file.
const (
	// ConfigMaxBytesDefault is the largest configuration file read, 1 MiB
	// (LoadOptions.MaxFileBytes). At worst the YAML parser holds a few
	// hundred bytes per byte of input.
	ConfigMaxBytesDefault = 1 << 20
	// ConfigMaxDepth is how deep the file's mappings and lists may nest.
	ConfigMaxDepth = 100
	// ConfigMaxMappingKeys is how many keys one block mapping may have.
	ConfigMaxMappingKeys = 5000
	// ConfigMaxExpandedNodes is how many nodes aliases (merge keys
	// included) may produce across the file: each use of an alias counts
	// every node of its anchor, a string one node per 256 bytes.
	ConfigMaxExpandedNodes = 100_000
	// ConfigMaxMergeDepth is how deep merge keys (<<) may nest.
	ConfigMaxMergeDepth = 8
)

// A condition: its source is checked before expr parses it; evaluating it
// cannot build a string longer than ConditionMaxStringBytes, nor take more
// than ConditionMaxSteps predicate steps for one event (all the observers'
// conditions together).
const (
	ConditionMaxBytes       = 16 << 10 // source length
	ConditionMaxDepth       = 64       // nesting of parentheses, brackets, calls and unary operators
	ConditionMaxStringBytes = 64 << 10 // a string built by +, repeat, replace, join, toJSON or string()
	ConditionMaxSteps       = 1 << 20  // predicate steps (all, any, map, filter, reduce, …) of one event's evaluations
)

// A template: the source is checked when it is compiled, the output while
// it is rendered.
const (
	TemplateMaxBytes       = 256 << 10 // source length
	TemplateMaxOutputBytes = 1 << 20   // one rendering
)

// byteSize renders a limit for messages: "1 MiB (1048576 bytes)".
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB (%d bytes)", n>>10, n)
	}
	return fmt.Sprintf("%d bytes", n)
}
