package scrape

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// Discovery defaults.
const (
	// StaleAfterDefault: an instance whose heartbeat is older than this is
	// not scraped (three heartbeat intervals, as `status` judges health).
	StaleAfterDefault = 15 * time.Second
	// OmitAfterDefault: rows older than this (left by killed processes)
	// are not even reported as skipped, as in `status`.
	OmitAfterDefault = time.Hour
)

// Target is one /metrics page to read.
type Target struct {
	// Instance is the address scraped (host:port), the instance label of
	// its per-instance series.
	Instance string `json:"instance"`
	URL      string `json:"url"`
	// ID and ListenerID name the instance in observer_listeners; "" for a
	// --url target.
	ID         string `json:"id,omitempty"`
	ListenerID string `json:"listener_id,omitempty"`
}

// Skipped is an instance Discover found but does not scrape.
type Skipped struct {
	ID                  string  `json:"id"`
	ListenerID          string  `json:"listener_id"`
	HTTPAddr            string  `json:"http_addr"`
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
	Reason              string  `json:"reason"`
}

// Discover lists the instances of every listener group that registered an
// admin address in observer_listeners: those whose heartbeat is younger
// than staleAfter as targets, the others (up to OmitAfterDefault old) as
// skipped. A wildcard address (0.0.0.0:8000, [::]:8000) is reached at the
// instance's host name.
func Discover(ctx context.Context, db dbsqlc.DBTX, staleAfter time.Duration) ([]Target, []Skipped, error) {
	rows, err := dbsqlc.New(db).ListenerEndpoints(ctx, OmitAfterDefault.Seconds())
	if err != nil {
		return nil, nil, errors.WithHint(errors.Wrap(err, "metrics: read observer_listeners"),
			"run `fraiseql-observers migrate` against this database, or pass --url")
	}
	targets, skipped := []Target{}, []Skipped{}
	for _, r := range rows {
		addr, host := deref(r.HttpAddr), deref(r.Host)
		if r.HeartbeatAgeSeconds >= staleAfter.Seconds() {
			skipped = append(skipped, Skipped{ID: r.ID, ListenerID: r.ListenerID, HTTPAddr: addr,
				HeartbeatAgeSeconds: roundMillis(r.HeartbeatAgeSeconds),
				Reason: fmt.Sprintf("heartbeat %.0fs old (stale after %.0fs): stopped or unreachable from the database",
					r.HeartbeatAgeSeconds, staleAfter.Seconds())})
			continue
		}
		inst := reachable(addr, host)
		targets = append(targets, Target{Instance: inst, URL: "http://" + inst + "/metrics", ID: r.ID, ListenerID: r.ListenerID})
	}
	return targets, skipped, nil
}

// reachable is addr with a wildcard host replaced by the instance's host
// name (or loopback when it has none).
func reachable(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if host == "" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, port)
	}
	return addr
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func roundMillis(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }
