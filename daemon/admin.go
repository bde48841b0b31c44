package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// adminRealm names the admin server in WWW-Authenticate.
const adminRealm = "fraiseql-observers admin"

// adminMux serves /healthz (the process is alive), /readyz (started, the
// database answers, and health reports nothing: a leader that keeps failing
// its batches or does not move the checkpoint is not ready), /metrics and,
// when withPprof, Go's /debug/pprof/.
func adminMux(reg *prometheus.Registry, pool *pgxpool.Pool, ready *atomic.Bool, health func() error, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready: starting or shutting down", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			http.Error(w, "not ready: database unreachable", http.StatusServiceUnavailable)
			return
		}
		if err := health(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// requireAuth asks every request but GET /healthz for the admin: block's
// credentials: a bearer token or basic auth (either, when both are set).
// Without credentials configured it returns next unchanged. A request
// without valid credentials gets 401 and a WWW-Authenticate header per
// accepted scheme; the credentials are never logged.
func requireAuth(next http.Handler, creds observers.AdminCredentials) http.Handler {
	if creds.Token == "" && creds.Password == "" {
		return next
	}
	token, user, pass := digest(creds.Token), digest(creds.Username), digest(creds.Password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || authorized(r, creds, token, user, pass) {
			next.ServeHTTP(w, r)
			return
		}
		if creds.Token != "" {
			w.Header().Add("WWW-Authenticate", `Bearer realm="`+adminRealm+`"`)
		}
		if creds.Password != "" {
			w.Header().Add("WWW-Authenticate", `Basic realm="`+adminRealm+`", charset="UTF-8"`)
		}
		http.Error(w, "unauthorized: the admin server needs the credentials of the admin: block "+
			"(Authorization: Bearer <token of admin.token_env>, or basic auth)", http.StatusUnauthorized)
	})
}

func authorized(r *http.Request, creds observers.AdminCredentials, token, user, pass [32]byte) bool {
	h := r.Header.Get("Authorization")
	if creds.Token != "" {
		if scheme, t, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			got := digest(strings.TrimSpace(t))
			if subtle.ConstantTimeCompare(got[:], token[:]) == 1 {
				return true
			}
		}
	}
	if creds.Password != "" {
		if u, p, ok := r.BasicAuth(); ok {
			gu, gp := digest(u), digest(p)
			// Both compared, always, so timing tells nothing of which one differed.
			okUser := subtle.ConstantTimeCompare(gu[:], user[:])
			okPass := subtle.ConstantTimeCompare(gp[:], pass[:])
			return okUser&okPass == 1
		}
	}
	return false
}

// digest hashes a credential so comparisons take the same time whatever
// the lengths.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }
