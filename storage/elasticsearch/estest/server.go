package estest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode is how the server answers while it is down.
type Mode int

// The modes.
const (
	Up          Mode = iota
	Refuse           // close every connection without an answer
	Unavailable      // answer 503 to everything
)

// Option configures a Server.
type Option func(*Server)

// WithAPIKey requires "Authorization: ApiKey <key>" on every request.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithBasicAuth requires basic auth with user and password on every request.
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// WithoutProductHeader makes the server answer without
// X-Elastic-Product: as a server that is not Elasticsearch.
func WithoutProductHeader() Option { return func(s *Server) { s.noProduct = true } }

// WithTLS serves HTTPS with httptest's certificate (CertPEM).
func WithTLS() Option { return func(s *Server) { s.tls = true } }

// Server is the test server. Its methods are safe for concurrent use.
type Server struct {
	URL string

	srv                   *httptest.Server
	apiKey, user          string
	password              string
	noProduct, tls        bool
	mu                    sync.Mutex
	templates             map[string]*template
	policies              map[string]*policy
	indices               map[string]*index
	seqNo                 int64
	mode                  Mode
	failItem              func(index, id string) int
	delay                 time.Duration
	requests              []string
	now                   func() time.Time
	maxResultWindow, took int
}

// New starts a Server, closed when t ends.
func New(t testing.TB, opts ...Option) *Server {
	s := &Server{
		templates: map[string]*template{}, policies: map[string]*policy{}, indices: map[string]*index{},
		now: time.Now, maxResultWindow: 10_000, took: 1,
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // a client refusing the certificate is a test's point
	if s.tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// CertPEM is the TLS server's certificate in PEM (for a CA file).
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// SetMode takes the server down (Refuse, Unavailable) or up again.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// FailItems makes bulk items fail: f returns the status an item of index
// and _id fails with (429: es_rejected_execution_exception, 400:
// document_parsing_exception, 5xx: unavailable_shards_exception), or 0 to
// let it pass. nil removes the fault.
func (s *Server) FailItems(f func(index, id string) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failItem = f
}

// SetDelay delays every answer by d (a request's end stops the wait).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns "METHOD /path?query" of every request received.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	mode, delay := s.mode, s.delay
	s.mu.Unlock()
	// Read the body first: the server notices a client that gave up (and
	// ends r's context) only once the body is read.
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if mode == Refuse {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if !s.noProduct {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	if mode == Unavailable {
		writeError(w, http.StatusServiceUnavailable, "unavailable_shards_exception", "estest: the server is down (fault injected)")
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="security", charset="UTF-8", ApiKey`)
		writeError(w, http.StatusUnauthorized, "security_exception", "unable to authenticate with provided credentials for REST request ["+r.URL.Path+"]")
		return
	}
	s.route(w, r)
}

// authorized checks the request's credentials against those configured.
func (s *Server) authorized(r *http.Request) bool {
	// The scheme is case-insensitive (the client sends "APIKey").
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case s.apiKey != "":
		return strings.EqualFold(scheme, "ApiKey") && cred == s.apiKey
	case s.user != "":
		return strings.EqualFold(scheme, "Basic") && cred == base64.StdEncoding.EncodeToString([]byte(s.user+":"+s.password))
	}
	return true
}

// route dispatches by path and method.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	var parts []string
	for p := range strings.SplitSeq(strings.Trim(r.URL.EscapedPath(), "/"), "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", "invalid path segment ["+p+"]")
			return
		}
		parts = append(parts, u)
	}
	if len(parts) == 1 && parts[0] == "" {
		parts = nil
	}
	type handler func(http.ResponseWriter, *http.Request, []string)
	var routes []struct {
		methods []string
		h       handler
	}
	add := func(h handler, methods ...string) {
		routes = append(routes, struct {
			methods []string
			h       handler
		}{methods, h})
	}
	switch {
	case len(parts) == 0:
		add(s.info, http.MethodGet, http.MethodHead)
	case len(parts) == 1 && parts[0] == "_bulk":
		add(s.bulk, http.MethodPost, http.MethodPut)
	case len(parts) == 2 && parts[0] == "_index_template":
		add(s.putTemplate, http.MethodPut, http.MethodPost)
		add(s.getTemplate, http.MethodGet)
	case len(parts) == 3 && parts[0] == "_ilm" && parts[1] == "policy":
		add(s.putPolicy, http.MethodPut)
		add(s.getPolicy, http.MethodGet)
	case len(parts) == 2 && parts[1] == "_search":
		add(s.search, http.MethodGet, http.MethodPost)
	case len(parts) == 1 && !strings.HasPrefix(parts[0], "_"):
		add(s.createIndex, http.MethodPut)
	case len(parts) == 3 && parts[1] == "_doc" && !strings.HasPrefix(parts[0], "_"):
		add(s.putDoc, http.MethodPut, http.MethodPost)
		add(s.getDoc, http.MethodGet)
		add(s.deleteDoc, http.MethodDelete)
	}
	if len(routes) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":  fmt.Sprintf("no handler found for uri [%s] and method [%s] (estest implements a subset)", r.URL.Path, r.Method),
			"status": http.StatusBadRequest,
		})
		return
	}
	var allowed []string
	for _, rt := range routes {
		if slices.Contains(rt.methods, r.Method) {
			rt.h(w, r, parts)
			return
		}
		allowed = append(allowed, rt.methods...)
	}
	writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: %v", r.URL.Path, r.Method, allowed),
		"status": http.StatusMethodNotAllowed,
	})
}

// params checks the query parameters: each must be one of allowed (the
// ones this server implements for the endpoint; the formatting ones
// pretty, human and error_trace are ignored). It answers 400 otherwise.
func params(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, bool) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(allowed, k) && k != "pretty" && k != "human" && k != "error_trace" {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception",
				fmt.Sprintf("request [%s] contains unrecognized parameter: [%s] (estest implements %v)", r.URL.Path, k, allowed))
			return nil, false
		}
	}
	return q, true
}

// body reads a request's body, which must be there with a JSON content
// type (or NDJSON when ndjson).
func body(w http.ResponseWriter, r *http.Request, ndjson bool) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "parse_exception", "estest: read the body: "+err.Error())
		return nil, false
	}
	if len(b) == 0 {
		writeError(w, http.StatusBadRequest, "parse_exception", "request body is required")
		return nil, false
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	ok := err == nil && (mt == "application/json" || mt == "application/vnd.elasticsearch+json" ||
		ndjson && (mt == "application/x-ndjson" || mt == "application/vnd.elasticsearch+x-ndjson"))
	if !ok {
		writeJSON(w, http.StatusNotAcceptable, map[string]any{
			"error": fmt.Sprintf("Content-Type header [%s] is not supported", ct), "status": http.StatusNotAcceptable,
		})
		return nil, false
	}
	return b, true
}

// writeJSON answers status with v.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // a _source comes back as it was stored
	_ = enc.Encode(v)
}

// errorBody is Elasticsearch's error object.
func errorBody(typ, reason string) map[string]any {
	cause := map[string]any{"type": typ, "reason": reason}
	return map[string]any{"root_cause": []any{cause}, "type": typ, "reason": reason}
}

// writeError answers an Elasticsearch error.
func writeError(w http.ResponseWriter, status int, typ, reason string) {
	writeJSON(w, status, map[string]any{"error": errorBody(typ, reason), "status": status})
}

// apiError is an error answer decided below the handlers.
type apiError struct {
	status int
	typ    string
	reason string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.reason) }

func badRequest(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, reason: fmt.Sprintf(format, args...)}
}

// notImplemented is the 400 for what Elasticsearch takes but this server
// does not implement.
func notImplemented(format string, args ...any) *apiError {
	return badRequest("estest_not_implemented", "estest: "+format+" is not implemented", args...)
}

func (e *apiError) write(w http.ResponseWriter) { writeError(w, e.status, e.typ, e.reason) }

// info answers GET /.
func (s *Server) info(w http.ResponseWriter, r *http.Request, _ []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "estest", "cluster_name": "estest", "cluster_uuid": "estest-0000",
		"version": map[string]any{
			"number": "8.19.7", "build_flavor": "default", "build_type": "estest", "lucene_version": "9.12.2",
			"minimum_wire_compatibility_version": "7.17.0", "minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
}

// Indices returns the names of the indices, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.indices))
}

// Source returns the _source of a live document.
func (s *Server) Source(index, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[index]
	if !ok {
		return nil, false
	}
	d, ok := ix.docs[id]
	if !ok || d.deleted {
		return nil, false
	}
	return d.source, true
}

// Mapping returns an index's mapping (dynamic fields included) and its
// settings, flattened ("index.number_of_shards").
func (s *Server) Mapping(index string) (mapping, settings map[string]any, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[index]
	if !ok {
		return nil, nil, false
	}
	return ix.mapping.asJSON(), maps.Clone(ix.settings), true
}
