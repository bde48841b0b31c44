package elasticsearch

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/cockroachdb/errors"
	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Defaults of Config.
const (
	AuditIndexPrefixDefault = "fraiseql_events"
	TimeoutDefault          = 10 * time.Second
)

// maxResponseBytes bounds a response body read into memory (a page of
// MaxLimit documents fits many times over).
const maxResponseBytes = 256 << 20

// Config says how to reach Elasticsearch. Secrets are the resolved values
// (the daemon reads the *_env variables); they never appear in an error,
// a log line or String.
type Config struct {
	URL      string // required, e.g. https://es.example.com:9200 (no credentials in it)
	APIKey   string // the encoded API key, sent as "Authorization: ApiKey …"; or
	Username string // basic auth, with Password
	Password string
	CAFile   string // PEM certificates the server's must chain to; "" = the system roots
	// AuditIndexPrefix names the audit trail's daily indices
	// <prefix>-YYYY.MM.DD, its index template <prefix> and its ILM policy
	// <prefix>_policy. Default AuditIndexPrefixDefault.
	AuditIndexPrefix string
	Transport        http.RoundTripper // optional (tests); with CAFile it must be an *http.Transport
	Timeout          time.Duration     // per request; default TimeoutDefault
}

// WithDefaults returns c with the defaults of its unset fields.
func (c Config) WithDefaults() Config {
	c.AuditIndexPrefix = cmp.Or(c.AuditIndexPrefix, AuditIndexPrefixDefault)
	c.Timeout = cmp.Or(c.Timeout, TimeoutDefault)
	return c
}

// String describes c without its secrets.
func (c Config) String() string {
	auth := "none"
	switch {
	case c.APIKey != "":
		auth = "api key"
	case c.Username != "":
		auth = "basic (user " + c.Username + ")"
	}
	return fmt.Sprintf("elasticsearch url=%s auth=%s ca_file=%q audit_index_prefix=%s", redactURL(c.URL), auth, c.CAFile, c.AuditIndexPrefix)
}

// LogValue logs c as String does: without its secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// redactURL is raw without any user:password@, query or fragment (New
// refuses credentials in the URL, but String may describe a Config New has
// not seen, and a query may hold a key).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

var indexPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,199}$`)

// validate checks c (with defaults) and returns the parsed URL.
func (c Config) validate() (*url.URL, error) {
	if c.URL == "" {
		return nil, errors.WithHint(errors.New("elasticsearch: url is empty"), "set elasticsearch.url, e.g. https://es.example.com:9200")
	}
	// url.Parse's errors quote the URL, which may hold a password: say
	// only that it does not parse.
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, errors.WithHint(errors.New("elasticsearch: url does not parse as a URL"), "expected http(s)://host:port, e.g. https://es.example.com:9200")
	}
	switch {
	case u.User != nil:
		return nil, errors.WithHint(errors.New("elasticsearch: url carries credentials (user:password@)"),
			"remove them from the url and use elasticsearch.username_env/password_env or api_key_env")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.WithHint(errors.Newf("elasticsearch: url scheme %q is not http or https", u.Scheme), "e.g. https://es.example.com:9200")
	case u.Host == "":
		return nil, errors.WithHint(errors.New("elasticsearch: url has no host"), "e.g. https://es.example.com:9200")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.WithHint(errors.New("elasticsearch: url has a query or a fragment"), "give the server's base URL only")
	case c.APIKey != "" && (c.Username != "" || c.Password != ""):
		return nil, errors.WithHint(errors.New("elasticsearch: both an API key and a username/password are set"),
			"set api_key_env, or username_env and password_env, not both")
	case c.Username != "" && c.Password == "":
		return nil, errors.WithHint(errors.New("elasticsearch: username is set but the password is empty"), "set elasticsearch.password_env to a variable holding the password")
	case c.Username == "" && c.Password != "":
		return nil, errors.WithHint(errors.New("elasticsearch: password is set without a username"), "set elasticsearch.username_env too")
	case !indexPrefixRE.MatchString(c.AuditIndexPrefix):
		return nil, errors.WithHint(errors.Newf("elasticsearch: audit index prefix %q is not a valid index name", c.AuditIndexPrefix),
			"use lower-case letters, digits, _, - and ., starting with a letter or digit")
	case c.Timeout < 0:
		return nil, errors.New("elasticsearch: timeout is negative")
	}
	return u, nil
}

// transport is c.Transport with c.CAFile's certificates as its roots.
func (c Config) transport() (http.RoundTripper, error) {
	if c.CAFile == "" {
		return c.Transport, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, errors.WithHint(errors.Wrap(err, "elasticsearch: read ca_file"), "elasticsearch.ca_file names the PEM file of the server's certificate authority")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.WithHint(errors.Newf("elasticsearch: ca_file %s holds no PEM certificate", c.CAFile),
			"give the CA certificate in PEM (-----BEGIN CERTIFICATE-----), e.g. Elasticsearch's config/certs/http_ca.crt")
	}
	var t *http.Transport
	switch base := c.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = base.Clone()
	default:
		return nil, errors.Newf("elasticsearch: a ca_file needs an *http.Transport, not %T", c.Transport)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

// Client is a connection to Elasticsearch: its Search and Audit stores,
// the templates and the health check. It is safe for concurrent use.
type Client struct {
	es     *es.Client
	cfg    Config
	search *Search
	audit  *Audit
}

// New checks cfg and returns a Client; it does not contact the server
// (Ping does).
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	rt, err := cfg.transport()
	if err != nil {
		return nil, err
	}
	client, err := es.NewClient(es.Config{
		Addresses: []string{u.String()},
		APIKey:    cfg.APIKey,
		Username:  cfg.Username,
		Password:  cfg.Password,
		Transport: rt,
		// 502, 503, 504 and 429 are retried twice, after 100 then 200 ms
		// (within the request's timeout); so are connection errors.
		RetryOnStatus: []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests},
		MaxRetries:    2,
		RetryBackoff:  func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond },
	})
	if err != nil {
		// The client's errors name neither the key nor the password.
		return nil, errors.Wrap(err, "elasticsearch: create the client")
	}
	c := &Client{es: client, cfg: cfg}
	c.search = &Search{c: c}
	c.audit = &Audit{c: c}
	return c, nil
}

// Search returns the entity documents' store.
func (c *Client) Search() *Search { return c.search }

// Audit returns the audit trail's store.
func (c *Client) Audit() *Audit { return c.audit }

// Ping asks the server who it is: an error unless it answers as
// Elasticsearch (the client's product check) with the credentials given.
func (c *Client) Ping(ctx context.Context) error {
	res, err := c.do(ctx, "ping", esapi.InfoRequest{})
	if err != nil {
		return err
	}
	if res.status != http.StatusOK {
		return res.err("ping")
	}
	var info struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	if err := json.Unmarshal(res.body, &info); err != nil || info.Version.Number == "" {
		return errors.WithHint(errors.New("elasticsearch: ping: the server's answer has no version"), "is elasticsearch.url an Elasticsearch server?")
	}
	return nil
}

// response is a server's answer, read whole.
type response struct {
	status int
	body   []byte
}

// err is the error of a response that is not a success.
func (r response) err(what string) error { return statusError(what, r.status, r.body) }

// do sends req within the configured timeout and reads the answer. Only a
// request that got no HTTP answer is an error here: the caller decides
// what each status means.
func (c *Client) do(ctx context.Context, what string, req esapi.Request) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	res, err := req.Do(ctx, c.es)
	if err != nil {
		return response{}, transportError(what, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return response{}, transportError(what, err)
	}
	if len(body) > maxResponseBytes {
		return response{}, errors.WithHint(errors.Newf("elasticsearch: %s: the answer is over %d bytes", what, maxResponseBytes), "ask for fewer results")
	}
	return response{status: res.StatusCode, body: body}, nil
}
