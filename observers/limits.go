package observers

import "fmt"

// Limits on the work a condition or a template can ask for. Each input is
// bounded before the step that could grow with it.

// A condition: its source is checked before expr parses it, and
// evaluating it cannot build a string longer than ConditionMaxStringBytes.
const (
	ConditionMaxBytes       = 16 << 10 // source length
	ConditionMaxDepth       = 64       // nesting of parentheses, brackets, calls and unary operators
	ConditionMaxStringBytes = 64 << 10 // a string built by +, repeat, replace, join, toJSON or string()
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
