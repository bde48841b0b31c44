package observers

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Severity of a Diagnostic.
type Severity int

const (
	SeverityError   Severity = iota // the configuration cannot be used
	SeverityWarning                 // usable, but something needs attention (an unset variable)
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// MarshalText renders the severity as "error" or "warning".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one problem found in a configuration file. Line and Column
// are 1-based; 0 when unknown.
type Diagnostic struct {
	File     string
	Line     int
	Column   int
	Severity Severity
	Message  string
	Hint     string
}

// String renders "file:line:col: message" (warnings as "file:line:col:
// warning: message"), followed by "\n  hint: …" when there is a hint.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Line == 0 && d.Column == 0 { // a table row, or a position the parser did not give
		fmt.Fprintf(&b, "%s: ", d.File)
	} else {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.File, d.Line, d.Column)
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString("\n  hint: ")
		b.WriteString(d.Hint)
	}
	return b.String()
}

// Diagnostics is every problem found in a configuration file, in file order.
type Diagnostics []Diagnostic

// Errors returns the diagnostics of severity error.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SeverityError {
			out = append(out, d)
		}
	}
	return out
}

// Warnings returns the diagnostics of severity warning.
func (ds Diagnostics) Warnings() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SeverityWarning {
			out = append(out, d)
		}
	}
	return out
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Parse parses and validates a configuration. Diagnostics holds every
// problem found, not just the first. The error is non-nil when any
// diagnostic is an error; the Config is then nil. Unset *_env variables
// (looked up in the process environment) are warnings. observers_table's
// rows are not read (ParseConfig reads them).
func Parse(filename string, data []byte) (*Config, Diagnostics, error) {
	return ParseWithEnv(filename, data, os.LookupEnv)
}

// ParseWithEnv is Parse with the environment lookup injected.
func ParseWithEnv(filename string, data []byte, getenv func(string) (string, bool)) (*Config, Diagnostics, error) {
	return parse(filename, data, parseInput{getenv: getenv})
}

// parseInput is what parse decodes besides the file.
type parseInput struct {
	getenv func(string) (string, bool)
	// rows, when withRows, are the observers_table rows (tableobservers.go);
	// else readRows, when set, reads them once the file names the table.
	rows     []TableObserver
	withRows bool
	readRows func(table string) ([]TableObserver, error)
	// source, when set, is the stored version source (ParseVersion).
	source []byte
	// maxBytes is the largest file accepted; 0: ConfigMaxBytesDefault.
	maxBytes int
	// ctx, when set, stops a parse whose caller gave up (between steps).
	ctx context.Context
}

// parse decodes the file data and the observers_table rows; Source and
// Hash hold the file followed by the rows.
func parse(filename string, data []byte, in parseInput) (*Config, Diagnostics, error) {
	l := &loader{file: filename, getenv: in.getenv, warnedEnv: map[string]bool{},
		rows: in.rows, withRows: in.withRows, readRows: in.readRows, blocks: map[string]ast.Node{},
		maxBytes: maxFileBytes(in.maxBytes), ctx: in.ctx,
		aliases: map[*ast.AliasNode]ast.Node{}, sizes: map[ast.Node]int{}}
	cfg := l.parse(data)
	if l.rowsErr != nil {
		return nil, l.diags, l.rowsErr
	}
	if err := l.cancelled(); err != nil {
		return nil, l.diags, err
	}
	sort.SliceStable(l.diags, func(i, j int) bool {
		a, b := l.diags[i], l.diags[j]
		if (a.File == filename) != (b.File == filename) { // the file's first, then the rows in order
			return a.File == filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if errs := l.diags.Errors(); len(errs) > 0 {
		noun := "problem"
		if len(errs) > 1 {
			noun = "problems"
		}
		first, _, _ := strings.Cut(errs[0].String(), "\n")
		return nil, l.diags, errors.WithHint(
			errors.Newf("invalid observer config %s: %d %s, first: %s", filename, len(errs), noun, first),
			fmt.Sprintf("run `fraiseql-observers validate-config %s` to list them all", filename))
	}
	src := in.source
	if src == nil {
		src = data
		if l.withRows {
			var err error
			if src, err = versionSource(data, l.rows); err != nil {
				return nil, l.diags, err
			}
		}
	}
	cfg.Source = src
	cfg.Hash = sourceHash(src)
	cfg.Filename = filename
	cfg.tableRead = l.withRows
	return cfg, l.diags, nil
}

// loader walks the YAML syntax tree, collecting diagnostics.
type loader struct {
	file     string
	getenv   func(string) (string, bool)
	diags    Diagnostics
	maxBytes int             // the file's size limit (a row's too)
	ctx      context.Context // nil: not cancellable

	aliases  map[*ast.AliasNode]ast.Node // the anchor's node each alias names (config_expand.go)
	sizes    map[ast.Node]int            // nodes of an anchor's node
	expanded int                         // nodes produced by aliases so far

	warnedEnv map[string]bool     // variables already reported unset
	reported  map[Diagnostic]bool // every diagnostic, reported once

	rows     []TableObserver                             // observers_table rows (tableobservers.go)
	withRows bool                                        // decode rows: the table was read
	readRows func(table string) ([]TableObserver, error) // reads them when the file names a table; nil: not read
	rowsErr  error                                       // readRows failed
	row      bool                                        // decoding a row: diagnostics have no position

	blocks  map[string]ast.Node // top-level keys, for ConfigCheck.BlockErrorf
	decoded []decodedAction     // every action decoded, for the types' CheckConfig
}

// entry is one key/value pair of a mapping.
type entry struct {
	key   string
	keyN  ast.Node
	value ast.Node // nil for a key without a value
}

// parse decodes data; nil when it cannot be decoded (reported). Decoding
// stops at the first alias past the expansion budget (stopDecoding).
func (l *loader) parse(data []byte) (cfg *Config) {
	defer func() {
		if r := recover(); r != nil {
			if _, stop := r.(stopDecoding); !stop {
				panic(r)
			}
			cfg = nil
		}
	}()
	f := l.syntaxTree(data, fileNames, l.maxBytes)
	if f == nil || l.cancelled() != nil {
		return nil
	}
	var docs []*ast.DocumentNode
	for _, d := range f.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		l.diag(SeverityError, 1, 1, "the configuration file is empty",
			"start from examples/observers.yaml: a listener block and an observers map")
		return nil
	}
	if len(docs) > 1 {
		l.errorf(docs[1].Body, "only one YAML document is allowed", "remove the second document (after ---)")
	}
	l.anchorScope(docs[0].Body)
	return l.config(docs[0].Body)
}

// cancelled is the caller's context error, wrapped; nil when it has none.
func (l *loader) cancelled() error {
	if l.ctx == nil || l.ctx.Err() == nil {
		return nil
	}
	return errors.Wrap(l.ctx.Err(), "load observer config")
}

// syntaxError reports a YAML parse error at the position the parser gives.
func (l *loader) syntaxError(err error) {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line, col := 0, 0
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line, col = tk.Position.Line, tk.Position.Column
		}
		l.diag(SeverityError, line, col, "YAML syntax error: "+ye.GetMessage(), "check indentation, quoting and the ':' after each key")
		return
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	l.diag(SeverityError, 0, 0, "YAML syntax error: "+msg, "")
}

// diagMax bounds a diagnostic's message and hint: whatever an action type
// quotes, a huge value is not echoed back whole.
const diagMax = 1000

func (l *loader) diag(sev Severity, line, col int, msg, hint string) {
	if l.row {
		line, col = 0, 0
	}
	d := Diagnostic{File: l.file, Line: line, Column: col, Severity: sev, Message: Shorten(msg, diagMax), Hint: Shorten(hint, diagMax)}
	if l.reported[d] { // a problem inside an anchor, once per use of its aliases
		return
	}
	if l.reported == nil {
		l.reported = map[Diagnostic]bool{}
	}
	l.reported[d] = true
	l.diags = append(l.diags, d)
}

func (l *loader) errorf(n ast.Node, msg, hint string) {
	line, col := nodePos(n)
	l.diag(SeverityError, line, col, msg, hint)
}

func (l *loader) warnf(n ast.Node, msg, hint string) {
	line, col := nodePos(n)
	l.diag(SeverityWarning, line, col, msg, hint)
}

// nodePos is the 1-based position of a node: the first key of a block
// mapping, the '-' of a block sequence, the token of anything else.
func nodePos(n ast.Node) (line, col int) {
	if n == nil {
		return 0, 0
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && (m.Start == nil || !m.IsFlowStyle) {
		return nodePos(m.Values[0].Key)
	}
	if mv, ok := n.(*ast.MappingValueNode); ok {
		return nodePos(mv.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// resolve strips anchors and tags and follows aliases, charging the
// expansion budget (config_expand.go).
func (l *loader) resolve(n ast.Node) ast.Node {
	for range 32 { // bounded: an alias naming an alias naming …
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if n = l.follow(v); n == nil {
				return nil
			}
		default:
			return n
		}
	}
	return nil
}

// typeName names the YAML type of a node for messages.
func typeName(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	default:
		return "a string"
	}
}

func isNull(n ast.Node) bool {
	_, null := n.(*ast.NullNode)
	return n == nil || null
}

// mapping returns the entries of n, which must be a mapping (null counts as
// empty). where names the mapping in messages, valid lists its keys (nil
// means any key). Unknown and duplicate keys are reported and dropped.
func (l *loader) mapping(n ast.Node, at ast.Node, where string, valid []string) ([]entry, bool) {
	v := l.resolve(n)
	if isNull(v) {
		return nil, true
	}
	if mv, ok := v.(*ast.MappingValueNode); ok { // a one-key mapping can parse as a bare pair
		v = &ast.MappingNode{BaseNode: mv.BaseNode, Values: []*ast.MappingValueNode{mv}}
	}
	m, ok := v.(*ast.MappingNode)
	if !ok {
		l.errorf(cmpNode(n, at), fmt.Sprintf("%s must be a mapping, got %s", where, typeName(v)),
			"write it as indented key: value lines")
		return nil, false
	}
	var out []entry
	seen := map[string]ast.Node{}
	for _, e := range l.entries(m, 0) {
		if valid != nil && !contains(valid, e.key) {
			l.errorf(e.keyN, fmt.Sprintf("unknown key %s in %s", QuoteShort(e.key), where), keyHint(e.key, valid))
			continue
		}
		if first, dup := seen[e.key]; dup {
			line, _ := nodePos(first)
			if where == "observers" {
				l.errorf(e.keyN, fmt.Sprintf("duplicate observer name %s (first defined at line %d)", QuoteShort(e.key), line),
					"observer names must be unique; rename one of them")
			} else {
				l.errorf(e.keyN, fmt.Sprintf("duplicate key %s in %s (first at line %d)", QuoteShort(e.key), where, line),
					"remove one of them")
			}
			continue
		}
		seen[e.key] = e.keyN
		out = append(out, e)
	}
	return out, true
}

// entries lists the pairs of m, expanding merge keys (<<: *anchor) at most
// ConfigMaxMergeDepth deep; an explicit key wins over a merged one, an
// earlier merged one over a later.
func (l *loader) entries(m *ast.MappingNode, depth int) []entry {
	var out, merged []entry
	for _, mv := range m.Values {
		if mv.Key != nil && mv.Key.IsMergeKey() {
			if depth >= ConfigMaxMergeDepth {
				l.errorf(mv.Key, fmt.Sprintf("merge keys (<<) nest more than %d levels deep", ConfigMaxMergeDepth),
					"merge the innermost anchors into one mapping")
				continue
			}
			src := l.resolve(mv.Value)
			var maps []ast.Node
			if seq, ok := src.(*ast.SequenceNode); ok {
				maps = seq.Values
			} else if !l.unresolved(mv.Value) {
				maps = []ast.Node{src}
			}
			for _, s := range maps {
				if l.unresolved(s) {
					continue
				}
				if mm, ok := l.resolve(s).(*ast.MappingNode); ok {
					merged = append(merged, l.entries(mm, depth+1)...)
				} else {
					l.errorf(mv.Key, "<< must merge a mapping", "point the alias at a mapping anchor")
				}
			}
			continue
		}
		out = append(out, entry{key: scalarText(l.resolve(mv.Key)), keyN: mv.Key, value: mv.Value})
	}
	if len(merged) == 0 {
		return out
	}
	have := make(map[string]bool, len(out)+len(merged))
	for _, e := range out {
		have[e.key] = true
	}
	for _, e := range merged {
		if !have[e.key] {
			have[e.key] = true
			out = append(out, e)
		}
	}
	return out
}

func cmpNode(n, fallback ast.Node) ast.Node {
	if n == nil || isNull(n) {
		return fallback
	}
	return n
}

// scalarText returns the text of a scalar node: the value of a string, the
// literal text of a number or boolean.
func scalarText(n ast.Node) string {
	switch v := n.(type) {
	case nil:
		return ""
	case *ast.StringNode:
		return v.Value
	case *ast.LiteralNode:
		if v.Value != nil {
			return v.Value.Value
		}
		return ""
	case *ast.NullNode:
		return ""
	default:
		if tk := n.GetToken(); tk != nil {
			return tk.Value
		}
		return ""
	}
}

func isScalar(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode, nil:
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// keyHint suggests the closest valid key and lists them all.
func keyHint(got string, valid []string) string {
	if len(got) > 2*quoteMax { // not a typo; and the distance costs len(got)
		return "valid keys: " + strings.Join(valid, ", ")
	}
	list := "valid keys: " + strings.Join(valid, ", ")
	if s := suggest(got, valid); s != "" {
		return fmt.Sprintf("did you mean %q? %s", s, list)
	}
	return list
}

// suggest returns the candidate closest to got, or "" when none is close.
func suggest(got string, candidates []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 3
	for _, c := range candidates {
		if norm(c) == norm(got) {
			return c
		}
		if len(got) >= 4 && strings.HasPrefix(c, strings.ToLower(got)) && bestD > 2 {
			best, bestD = c, 2 // "batch" for "batch_size"
		}
		if d := levenshtein(strings.ToLower(got), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
