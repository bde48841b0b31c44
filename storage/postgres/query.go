package postgres

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Postgres refuses a lexeme of 2 KB or more and a tsvector of 1 MB or more.
// A longer word is not indexed (no query finds it: storage.Words splits
// text into runs of letters and digits, so such a word is a 2 KB token,
// never a word anyone types), and a text's words beyond maxLexemesBytes are
// dropped: the first ones are kept.
const (
	maxLexemeBytes  = 2047
	maxLexemesBytes = 512 << 10
)

// tsvectorText is the text form of the tsvector holding the words of text
// (storage.Words), each once: 'w1' 'w2' …, cast with ::tsvector. Words are
// letters and digits only, so quoting them needs no escape, and the cast
// takes them as they are (no parser, no locale): free-text queries match
// exactly the words the contract defines. nil when text has no word.
func tsvectorText(text string) *string {
	words := lexemes(text)
	if len(words) == 0 {
		return nil
	}
	var b strings.Builder
	for _, w := range words {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('\'')
		b.WriteString(w)
		b.WriteByte('\'')
	}
	s := b.String()
	return &s
}

// lexemes is the words of text (storage.Words) that a tsvector holds, each
// once, in first-seen order, within the limits above.
func lexemes(text string) []string {
	words := storage.Words(text)
	seen := make(map[string]struct{}, len(words))
	out, size := words[:0], 0
	for _, w := range words {
		if len(w) > maxLexemeBytes {
			continue
		}
		if _, ok := seen[w]; ok {
			continue
		}
		if size+len(w)+3 > maxLexemesBytes {
			break
		}
		seen[w] = struct{}{}
		size += len(w) + 3
		out = append(out, w)
	}
	return out
}

// tsvector is the tsvector of text's words for COPY (binary): lexemes
// sorted, each once; invalid (NULL) when there is none.
func tsvector(text string) pgtype.TSVector {
	words := lexemes(text)
	if len(words) == 0 {
		return pgtype.TSVector{}
	}
	slices.Sort(words)
	v := pgtype.TSVector{Lexemes: make([]pgtype.TSVectorLexeme, len(words)), Valid: true}
	for i, w := range words {
		v.Lexemes[i].Word = w
	}
	return v
}

// tsqueryText is the text form of the tsquery that requires every word of
// text: 'w1' & 'w2' …, cast with ::tsquery. ok is false when a word is too
// long to have been indexed: nothing can match. "" (ok) when text has no
// word: everything matches.
func tsqueryText(text string) (q string, ok bool) {
	var b strings.Builder
	for _, w := range storage.Words(text) {
		if len(w) > maxLexemeBytes {
			return "", false
		}
		if b.Len() > 0 {
			b.WriteString(" & ")
		}
		b.WriteByte('\'')
		b.WriteString(w)
		b.WriteByte('\'')
	}
	return b.String(), true
}

// pageLimit is a query's page size: limit, DefaultLimit when ≤ 0, at most
// MaxLimit.
func pageLimit(limit int) int {
	switch {
	case limit <= 0:
		return storage.DefaultLimit
	case limit > storage.MaxLimit:
		return storage.MaxLimit
	}
	return limit
}

// encodeCursor and decodeCursor make a page's Next opaque: base64 (URL
// alphabet) of the key of the page's last row.
func encodeCursor(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func decodeCursor(where, cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", badCursor(where, cursor)
	}
	return string(b), nil
}

func badCursor(where, cursor string) error {
	return markRejected(errors.WithHint(errors.Newf("%s: invalid page cursor %q", where, excerpt(cursor)),
		"pass the Next of the previous page as it was returned"))
}

// filter builds the WHERE clause of a hand-written query: each condition
// names its values as $%d, and add binds them as the next parameters.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, vals ...any) {
	n := make([]any, len(vals))
	for i, v := range vals {
		f.args = append(f.args, v)
		n[i] = len(f.args)
	}
	f.conds = append(f.conds, fmt.Sprintf(cond, n...))
}

// where is " WHERE c1 AND c2 …", or "" without conditions.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}
