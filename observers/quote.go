package observers

import (
	"strconv"
	"unicode/utf8"
)

// quoteMax is how many characters of a key or a value a message quotes.
const quoteMax = 80

// QuoteShort quotes s as %q does, cut to 80 characters with "…": a
// message names a key or a value without echoing a huge one back.
func QuoteShort(s string) string { return strconv.Quote(Shorten(s, quoteMax)) }

// Shorten cuts s to n characters (an invalid byte counts as one), the last
// replaced by "…" when s is longer: the one way a message, a table cell or
// a stored error is kept short.
func Shorten(s string, n int) string {
	i := 0
	for range n - 1 {
		if i >= len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	if i >= len(s) {
		return s
	}
	if _, size := utf8.DecodeRuneInString(s[i:]); i+size >= len(s) {
		return s // exactly n characters
	}
	return s[:i] + "…"
}
