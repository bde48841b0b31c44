// Package email is the email action type (type: email): one message per
// event, rendered from templates (HTML values escaped) and sent through the
// top-level smtp: block with go-mail. SMTP 5xx replies are permanent, 4xx
// and connection errors transient; the Message-ID is the delivery's
// idempotency key.
package email
