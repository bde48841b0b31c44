package observers

import (
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// ReadConfigFile reads the configuration file at path, at most maxBytes+1
// bytes of it (maxBytes 0: ConfigMaxBytesDefault): enough for the parse
// to refuse a file over the limit without holding all of it.
func ReadConfigFile(path string, maxBytes int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(maxFileBytes(maxBytes))+1))
}

func maxFileBytes(n int) int {
	if n <= 0 {
		return ConfigMaxBytesDefault
	}
	return n
}

// sourceNames name what is parsed in messages: its size, its nesting.
type sourceNames struct{ size, nesting string }

var (
	fileNames = sourceNames{"the configuration file", "the configuration"}
	rowNames  = sourceNames{"the row", "the row"}
)

// syntaxTree turns data into a YAML syntax tree within the limits: its
// size, then (on the tokens, before the parser) its nesting and the keys
// of each block mapping. A problem is reported and gives nil.
func (l *loader) syntaxTree(data []byte, what sourceNames, maxBytes int) *ast.File {
	if len(data) > maxBytes {
		line, col := offsetPosition(data, maxBytes)
		l.diag(SeverityError, line, col, fmt.Sprintf("%s is larger than %s", what.size, byteSize(maxBytes)),
			"a configuration is a few KB to a few hundred KB; keep large data out of it (many observers belong in observers_table)")
		return nil
	}
	tokens := lexer.Tokenize(string(data))
	if !l.prescan(tokens, what.nesting) {
		return nil
	}
	f, err := parseTokens(tokens)
	if err != nil {
		l.syntaxError(err)
		return nil
	}
	return f
}

// parseTokens runs the YAML parser, a panic of which is a syntax error.
func parseTokens(tokens token.Tokens) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, errors.Newf("the YAML parser failed: %v", r)
		}
	}()
	return parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
}

// offsetPosition is the 1-based line and column of byte offset off.
func offsetPosition(data []byte, off int) (line, col int) {
	line, start := 1, 0
	for i := 0; i < off && i < len(data); i++ {
		if data[i] == '\n' {
			line, start = line+1, i+1
		}
	}
	return line, off - start + 1
}

// prescan bounds what the parser is given: how deep mappings and lists
// nest (block levels by their column, flow brackets by count) and how many
// keys one block mapping has; the parser's time and memory grow with the
// square of both. It reports the first token past a limit.
func (l *loader) prescan(tokens token.Tokens, what string) bool {
	type level struct {
		col  int
		key  bool // a mapping's keys, else a list's '-'
		keys int
	}
	var block []level
	flow := 0
	for i, tk := range tokens {
		switch tk.Type {
		case token.DocumentHeaderType:
			block, flow = block[:0], 0
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		}
		isKey := i+1 < len(tokens) && tokens[i+1].Type == token.MappingValueType && tk.Type != token.MappingValueType
		if flow == 0 && tk.Position != nil && (tk.Type == token.SequenceEntryType || isKey) {
			col := tk.Position.Column
			for len(block) > 0 {
				top := block[len(block)-1]
				if top.col > col || (top.col == col && !top.key && isKey) {
					block = block[:len(block)-1]
					continue
				}
				break
			}
			if n := len(block); n > 0 && block[n-1].col == col && block[n-1].key == isKey {
				if block[n-1].keys++; isKey && block[n-1].keys > ConfigMaxMappingKeys {
					l.errorAt(tk, fmt.Sprintf("the mapping has more than %d keys", ConfigMaxMappingKeys),
						"split it; many observers belong in observers_table (tb_observer rows)")
					return false
				}
			} else {
				block = append(block, level{col: col, key: isKey, keys: 1})
			}
		}
		if len(block)+flow > ConfigMaxDepth {
			l.errorAt(tk, fmt.Sprintf("%s nests deeper than %d levels", what, ConfigMaxDepth),
				"an observers file needs a few levels; flatten the structure (deep data does not belong in params)")
			return false
		}
	}
	return true
}

// errorAt reports a problem at a token.
func (l *loader) errorAt(tk *token.Token, msg, hint string) {
	line, col := 0, 0
	if tk.Position != nil {
		line, col = tk.Position.Line, tk.Position.Column
	}
	l.diag(SeverityError, line, col, msg, hint)
}
