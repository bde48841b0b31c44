package scrape

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Scrape defaults.
const (
	// TimeoutDefault bounds the scrape of one instance.
	TimeoutDefault = 5 * time.Second
	// MaxPageBytes bounds one /metrics page.
	MaxPageBytes = 32 << 20
	// parallel bounds the pages read at once.
	parallel = 8
)

// ErrUnauthorized marks a page the instance refused for want of the admin
// server's credentials (401: its configuration has an admin: block).
var ErrUnauthorized = errors.New("the admin server asks for credentials")

// Result is one target's page, or why it could not be read.
type Result struct {
	Target
	// Families are its metric families by name; nil when Err is set.
	Families map[string]*dto.MetricFamily `json:"-"`
	Err      error                        `json:"-"`
}

// Scrape reads every target's page concurrently, each within timeout
// (TimeoutDefault when 0), and returns the results in the targets' order.
// A target that cannot be read has Err set; the others are still read.
func Scrape(ctx context.Context, client *http.Client, targets []Target, timeout time.Duration) []Result {
	if client == nil {
		client = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = TimeoutDefault
	}
	out := make([]Result, len(targets))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			fams, err := page(tctx, client, t.URL)
			out[i] = Result{Target: t, Families: fams, Err: err}
		})
	}
	wg.Wait()
	return out
}

// page reads and parses one /metrics page.
func page(ctx context.Context, client *http.Client, rawURL string) (map[string]*dto.MetricFamily, error) {
	where := observers.RedactURL(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, errors.Wrapf(err, "scrape %s", where)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, errors.Wrapf(redactErr(err), "scrape %s", where)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errors.Mark(errors.Newf("scrape %s: %s", where, resp.Status), ErrUnauthorized)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.Newf("scrape %s: %s", where, resp.Status)
	}
	body := io.LimitReader(resp.Body, MaxPageBytes+1)
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	dec := expfmt.NewDecoder(&capped{r: body}, format)
	fams := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, errors.Wrapf(err, "scrape %s: parse", where)
		}
		fams[mf.GetName()] = mf
	}
}

// capped fails a page longer than MaxPageBytes instead of parsing a cut one.
type capped struct {
	r io.Reader
	n int64
}

func (c *capped) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > MaxPageBytes {
		return n, errors.Newf("page larger than %d bytes", MaxPageBytes)
	}
	return n, err
}

// redactErr keeps a *url.Error's message free of credentials a --url
// might carry: the URL (redacted) is named by the caller.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
