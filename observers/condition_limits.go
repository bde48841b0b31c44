package observers

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
)

// checkConditionSource bounds a condition before expr parses it: its
// length, then its nesting. expr's parser recurses once per level, and a
// stack overflow is fatal, not a panic a recover() can catch, so the depth
// is measured on the tokens (expr's lexer is a loop). It returns "" when
// the source is within the limits, else a one-line message.
func checkConditionSource(src string) string {
	if len(src) > ConditionMaxBytes {
		return "the condition is longer than " + byteSize(ConditionMaxBytes)
	}
	tokens, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return "" // expr reports it, with its position
	}
	if at, deep := conditionTooDeep(tokens); deep {
		return fmt.Sprintf("the condition nests deeper than %d levels (%s)", ConditionMaxDepth, runePosition(src, at))
	}
	return ""
}

// conditionTooDeep measures how deep expr's parser would recurse: one level
// per open bracket (parentheses, lists, maps, calls, predicates), per
// prefix operator (! not - +), and, until the enclosing bracket closes, per
// right-nesting operator (the ternary ?, ** and ^, let). It returns the
// rune offset of the token that goes past ConditionMaxDepth.
func conditionTooDeep(tokens []lexer.Token) (at int, deep bool) {
	type level struct{ base, unary int }
	var stack []level
	base, unary := 0, 0 // depth of the enclosing brackets; prefix operators pending at this level
	operand := false    // the previous token ends an operand
	for _, tk := range tokens {
		switch {
		case tk.Kind == lexer.Bracket && strings.Contains("([{", tk.Value):
			stack = append(stack, level{base, unary})
			base, unary, operand = base+unary+1, 0, false
		case tk.Kind == lexer.Bracket:
			if len(stack) > 0 {
				base = stack[len(stack)-1].base
				stack = stack[:len(stack)-1]
			}
			unary, operand = 0, true
		case tk.Kind == lexer.Operator && !operand && isPrefixOperator(tk.Value):
			unary++
		case tk.Kind == lexer.Operator && isRightNesting(tk.Value):
			base, unary, operand = base+unary+1, 0, false
		case tk.Kind == lexer.Operator:
			unary, operand = 0, false
		case tk.Kind == lexer.EOF:
		default: // an identifier, a number, a string
			operand = true
		}
		if base+unary > ConditionMaxDepth {
			return tk.From, true
		}
	}
	return 0, false
}

func isPrefixOperator(op string) bool { return op == "!" || op == "not" || op == "-" || op == "+" }

func isRightNesting(op string) bool { return op == "?" || op == "**" || op == "^" || op == "let" }

// runePosition renders a rune offset of src as "column N", or "line L,
// column N" past the first line.
func runePosition(src string, offset int) string {
	line, col := 1, 1
	i := 0
	for _, r := range src {
		if i == offset {
			break
		}
		i++
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	if line > 1 {
		return fmt.Sprintf("line %d, column %d", line, col)
	}
	return fmt.Sprintf("column %d", col)
}
