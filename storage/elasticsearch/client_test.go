package elasticsearch_test

import (
	"context"
	stderrors "errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

const (
	apiKey   = "c2VjcmV0LWtleS1pZDpzZWNyZXQta2V5LXZhbHVl" // fake secrets: no error or log may show them
	password = "hunter2-s3cr3t"
)

// requireNoSecret checks that err's message, hints and details name no
// secret.
func requireNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	full := fmt.Sprintf("%+v %s", err, strings.Join(errors.GetAllHints(err), " "))
	for _, s := range secrets {
		require.NotContains(t, full, s)
	}
}

func TestNewChecksTheConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  elasticsearch.Config
		want string
	}{
		{"no url", elasticsearch.Config{}, "url is empty"},
		{"not a url", elasticsearch.Config{URL: "https://es:9200:x/%zz"}, "does not parse"},
		{"credentials in the url", elasticsearch.Config{URL: "https://elastic:" + password + "@es.example.com:9200"}, "carries credentials"},
		{"scheme", elasticsearch.Config{URL: "ftp://es.example.com"}, `scheme "ftp"`},
		{"no host", elasticsearch.Config{URL: "https:///path"}, "no host"},
		{"query", elasticsearch.Config{URL: "https://es.example.com:9200/?pretty"}, "query or a fragment"},
		{"key and password", elasticsearch.Config{URL: "https://es:9200", APIKey: apiKey, Username: "u", Password: password}, "both an API key"},
		{"user without password", elasticsearch.Config{URL: "https://es:9200", Username: "u"}, "password is empty"},
		{"password without user", elasticsearch.Config{URL: "https://es:9200", Password: password}, "without a username"},
		{"prefix", elasticsearch.Config{URL: "https://es:9200", AuditIndexPrefix: "Events"}, "not a valid index name"},
		{"ca file missing", elasticsearch.Config{URL: "https://es:9200", CAFile: filepath.Join(t.TempDir(), "absent.pem")}, "read ca_file"},
	} {
		_, err := elasticsearch.New(tc.cfg)
		require.ErrorContains(t, err, tc.want, tc.name)
		require.NotEmpty(t, errors.GetAllHints(err), "%s: a hint", tc.name)
		requireNoSecret(t, err, password, apiKey)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	_, err := elasticsearch.New(elasticsearch.Config{URL: "https://es:9200", CAFile: notPEM})
	require.ErrorContains(t, err, "holds no PEM certificate")
}

func TestConfigStringHidesSecrets(t *testing.T) {
	t.Parallel()
	for _, cfg := range []elasticsearch.Config{
		{URL: "https://es:9200", APIKey: apiKey},
		{URL: "https://es:9200", Username: "elastic", Password: password},
		{URL: "https://elastic:" + password + "@es:9200"},
	} {
		var b strings.Builder
		slog.New(slog.NewTextHandler(&b, nil)).Info("config", "elasticsearch", cfg)
		for _, out := range []string{cfg.String(), fmt.Sprint(cfg), b.String()} {
			require.NotContains(t, out, password)
			require.NotContains(t, out, apiKey)
			require.Contains(t, out, "es:9200")
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("APIKey", func(t *testing.T) {
		t.Parallel()
		srv := estest.New(t, estest.WithAPIKey(apiKey))
		c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, APIKey: apiKey})
		require.NoError(t, err)
		require.NoError(t, c.Ping(ctx))
		require.NoError(t, c.EnsureTemplates(ctx))

		wrong, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, APIKey: "d3Jvbmc6a2V5"})
		require.NoError(t, err)
		err = wrong.Ping(ctx)
		require.ErrorContains(t, err, "401")
		require.Contains(t, strings.Join(errors.GetAllHints(err), " "), "api_key_env")
		requireNoSecret(t, err, apiKey, "d3Jvbmc6a2V5")

		none, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
		require.NoError(t, err)
		require.ErrorContains(t, none.Ping(ctx), "401")
	})
	t.Run("Basic", func(t *testing.T) {
		t.Parallel()
		srv := estest.New(t, estest.WithBasicAuth("elastic", password))
		c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, Username: "elastic", Password: password})
		require.NoError(t, err)
		require.NoError(t, c.Ping(ctx))
		require.NoError(t, c.Audit().Write(ctx, []storage.AuditRecord{record("1:received", time.Now())}))

		wrong, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, Username: "elastic", Password: "not-" + password})
		require.NoError(t, err)
		err = wrong.Audit().Write(ctx, []storage.AuditRecord{record("2:received", time.Now())})
		require.ErrorContains(t, err, "401")
		var bulk *storage.BulkError
		require.False(t, errors.As(err, &bulk), "a refused request is not a partial failure")
		requireNoSecret(t, err, password)
		_, err = wrong.Search().Get(ctx, storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "1"})
		require.ErrorContains(t, err, "401")
		requireNoSecret(t, err, password)
	})
}

func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := estest.New(t, estest.WithTLS(), estest.WithAPIKey(apiKey))
	caFile := filepath.Join(t.TempDir(), "http_ca.crt")
	require.NoError(t, os.WriteFile(caFile, srv.CertPEM(), 0o600))

	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, APIKey: apiKey, CAFile: caFile})
	require.NoError(t, err)
	require.NoError(t, c.Ping(ctx))
	require.NoError(t, c.EnsureTemplates(ctx))

	// Without the CA file the system roots do not know the test's CA.
	noCA, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, APIKey: apiKey})
	require.NoError(t, err)
	err = noCA.Ping(ctx)
	require.ErrorContains(t, err, "certificate")
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.Contains(t, strings.Join(errors.GetAllHints(err), " "), "ca_file")
	requireNoSecret(t, err, apiKey)
}

func TestProductCheckRefusesAnotherServer(t *testing.T) {
	t.Parallel()
	srv := estest.New(t, estest.WithoutProductHeader())
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	ctx := context.Background()
	err = c.Ping(ctx)
	require.ErrorContains(t, err, "not Elasticsearch")
	require.Contains(t, strings.Join(errors.GetAllHints(err), " "), "X-Elastic-Product")
	require.Error(t, c.EnsureTemplates(ctx))
	require.Error(t, c.Audit().Write(ctx, []storage.AuditRecord{record("1:received", time.Now())}))

	good, _ := newClient(t)
	require.NoError(t, good.Ping(ctx))
}

func TestMarksWorkWithEitherErrorsPackage(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL})
	require.NoError(t, err)
	err = c.Search().Index(context.Background(), storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "1"}, storage.Version{Seq: 1}, []byte(`[1, 2]`))
	require.True(t, stderrors.Is(err, storage.ErrRejected))
	require.True(t, errors.Is(err, storage.ErrRejected))
	require.False(t, errors.Is(err, storage.ErrUnavailable))

	srv.SetMode(estest.Unavailable)
	err = c.Ping(context.Background())
	require.True(t, stderrors.Is(err, storage.ErrUnavailable))
	require.True(t, errors.Is(err, storage.ErrUnavailable))
	var esErr *elasticsearch.Error
	require.True(t, errors.As(err, &esErr))
	require.Equal(t, 503, esErr.Status)
}
