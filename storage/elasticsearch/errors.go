package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// reasonMax bounds the server's reason quoted in an error: a mapping
// error may quote the document's values.
const reasonMax = 300

// Error is an error answer of the server: its HTTP status and the error
// object of the body ({"error": {"type", "reason", "caused_by"}}).
type Error struct {
	Status int
	Type   string // e.g. mapper_parsing_exception; "" when the body has none
	Reason string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("elasticsearch: %d %s", e.Status, http.StatusText(e.Status))
	if e.Type != "" {
		s += ": " + e.Type
	}
	if e.Reason != "" {
		s += ": " + cut(e.Reason, reasonMax)
	}
	return s
}

// errorCause is the error object of an answer, or of a bulk item.
type errorCause struct {
	Type     string      `json:"type"`
	Reason   string      `json:"reason"`
	CausedBy *errorCause `json:"caused_by"`
}

// asError is c as an *Error of status: the reason of its cause is added
// when it says more (a mapping error's cause names the field).
func (c errorCause) asError(status int) *Error {
	e := &Error{Status: status, Type: c.Type, Reason: c.Reason}
	if c.CausedBy != nil && c.CausedBy.Reason != "" && c.CausedBy.Reason != c.Reason {
		e.Reason += " (caused by " + c.CausedBy.Type + ": " + c.CausedBy.Reason + ")"
	}
	return e
}

// parseError reads an error answer's body; a body without an error object
// gives an Error with the status alone.
func parseError(status int, body []byte) *Error {
	var b struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Error) == 0 {
		return &Error{Status: status}
	}
	var c errorCause
	if json.Unmarshal(b.Error, &c) != nil {
		var s string
		_ = json.Unmarshal(b.Error, &s) // some answers give the error as a string
		return &Error{Status: status, Reason: s}
	}
	return c.asError(status)
}

// statusError is the error of an answer that is not a success, classified
// (classify).
func statusError(what string, status int, body []byte) error {
	return classify(errors.Wrap(parseError(status, body), what), status)
}

// classify marks err by what a retry would do. 400 (a mapping or parse
// error: the request or the document is wrong) and 413 (too large) would
// fail again: storage.ErrRejected. 429 and 5xx may pass later:
// storage.ErrUnavailable. 401 and 403 need the operator.
func classify(err error, status int) error {
	switch {
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return mark(err, storage.ErrRejected)
	case status == http.StatusUnauthorized:
		return errors.WithHint(err, "check the credentials: elasticsearch.api_key_env, or username_env and password_env")
	case status == http.StatusForbidden:
		return errors.WithHint(err, "the credentials lack a privilege (the audit trail needs create_doc on the audit indices, manage_index_templates and manage_ilm for the templates)")
	case status == http.StatusTooManyRequests || status >= 500:
		return mark(err, storage.ErrUnavailable)
	}
	return err
}

// productCheckMessage is the client's error when an answer lacks
// X-Elastic-Product: Elasticsearch.
const productCheckMessage = "the client noticed that the server is not Elasticsearch"

// transportError is the error of a request that got no usable answer.
func transportError(what string, err error) error {
	switch {
	case strings.Contains(err.Error(), productCheckMessage):
		return errors.WithHint(errors.Wrapf(err, "elasticsearch: %s", what),
			"the server did not answer as Elasticsearch (no X-Elastic-Product header): check elasticsearch.url, and that no proxy strips the header")
	case errors.Is(err, context.Canceled):
		return errors.Wrapf(err, "elasticsearch: %s", what)
	}
	return mark(errors.WithHint(errors.Wrapf(err, "elasticsearch: %s", what),
		"is Elasticsearch up and elasticsearch.url right? (with https, elasticsearch.ca_file may be needed)"), storage.ErrUnavailable)
}

// cut is s cut to n bytes on a rune boundary, marked when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// marked is err that also is kind (storage.ErrRejected,
// storage.ErrUnavailable) for errors.Is, the standard library's included
// (errors.Mark's marks are seen by cockroachdb/errors alone), with err's
// message.
type marked struct{ err, kind error }

func (m *marked) Error() string              { return m.err.Error() }
func (m *marked) Unwrap() error              { return m.err }
func (m *marked) Is(target error) bool       { return target == m.kind }
func (m *marked) Format(s fmt.State, r rune) { errors.FormatError(m, s, r) }

// mark returns err marked as kind.
func mark(err, kind error) error { return &marked{err: err, kind: kind} }
