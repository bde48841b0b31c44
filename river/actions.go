package river

import (
	"context"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// The action types besides webhook. Each returns nil, a permanent
// *observers.DeliveryError (Work cancels the job) or a transient error (River
// retries it per the observer's policy, honouring DeliveryError.RetryAfter).

// slack posts the rendered message to a Slack incoming webhook through the
// webhook client (same transport and SSRF guard) and the circuit breaker of
// its endpoint, configured by the top-level circuit_breaker: block.
func (w *ActionWorker) slack(ctx context.Context, v *Version, o *observers.Observer, idx int, ev *observers.Event) error {
	sa := o.Actions[idx].Slack
	url, err := sa.ResolvedURL(w.getenv)
	if err != nil {
		return permanent(err)
	}
	body, err := sa.Payload(observers.TemplateData(ev))
	if err != nil {
		return permanent(errors.Wrap(err, "slack: encode message"))
	}
	key := w.results.slackKey(v, o, ev, url, body)
	hit, release := w.results.lookup(ctx, key)
	if hit {
		return errServedFromCache
	}
	defer release()
	permit, err := w.breakerAllow(ctx, url, v.Config.CircuitBreaker)
	if err != nil {
		return err // a snooze: the endpoint's breaker is open
	}
	err = w.webhooks.SendSlack(ctx, url, body, sa.Timeout)
	permit.Done(ctx, err)
	if err == nil {
		w.results.save(ctx, v, key, 0)
	}
	return err
}

// email renders the message and sends it through the configuration's smtp:
// block; its Message-ID is stable across retries.
func (w *ActionWorker) email(ctx context.Context, v *Version, o *observers.Observer, idx int, ev *observers.Event) error {
	msg, err := o.Actions[idx].Email.Render(ev, o.Name)
	if err != nil {
		return permanent(err)
	}
	return w.mailer.Send(ctx, v.Config.SMTP, msg, observers.MessageID(ev.ID, o.Name, idx))
}

// database calls the action's SQL function in its own transaction on the
// worker's pool.
func (w *ActionWorker) database(ctx context.Context, o *observers.Observer, idx int, ev *observers.Event) error {
	da := o.Actions[idx].Database
	payload, err := da.Payload(ev, o.Name)
	if err != nil {
		return permanent(err)
	}
	return observers.CallDatabaseFunction(ctx, w.pool, da, payload)
}

// logAction writes the event as one structured log line; it cannot fail.
func (w *ActionWorker) logAction(ctx context.Context, o *observers.Observer, idx int, ev *observers.Event) error {
	o.Actions[idx].Log.Write(ctx, w.logger, o.Name, ev)
	return nil
}
