package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// RiverUIPrefix is where the admin server serves River UI.
const RiverUIPrefix = "/riverui"

// newRiverUI builds River UI (its assets are embedded in the riverui
// module, so nothing is fetched or built at run time) on the daemon's River
// client. Unless write, its API is read-only (readOnly). The handler must
// be started (Start) before it serves.
func newRiverUI(client *river.Client[pgx.Tx], logger *slog.Logger, write bool) (*riverui.Handler, http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger.With(slog.String("component", "riverui")),
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return nil, nil, errors.Wrap(err, "riverui: build the handler")
	}
	if write {
		return h, h, nil
	}
	return h, readOnly(h), nil
}

// readOnlyMessage is the 403's message: River UI shows it in its error toast.
const readOnlyMessage = "River UI is read-only: cancelling, retrying and deleting jobs and pausing queues are disabled. " +
	"Set admin.riverui_write: true in the configuration to allow them (with admin.token_env or admin.basic_auth)."

// readOnly answers 403 to every River UI request but GET and HEAD (River
// UI has no read-only mode of its own: cancel, delete and retry are POSTs
// to its API, pause, resume and update of a queue PUT and PATCH; its pages
// and assets are only GETs).
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": readOnlyMessage})
	})
}

// startRiverUI starts River UI's background services; they stop when ctx
// ends.
func startRiverUI(ctx context.Context, h *riverui.Handler) error {
	if h == nil {
		return nil
	}
	return errors.Wrap(h.Start(ctx), "riverui: start")
}
