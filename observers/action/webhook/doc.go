// Package webhook is the webhook action type (type: webhook): the event,
// or a body template, sent to a URL and signed per the Standard Webhooks
// spec (or FraiseQL's X-FraiseQL-Signature-256). It also owns the HTTP
// transport every HTTP delivery shares (NewHTTPClient with the SSRF guard,
// Do and its classification of answers: 2xx delivered, 4xx permanent,
// 408/429/5xx and timeouts retried with Retry-After), the signature
// functions receivers can verify with, and the result cache key of an HTTP
// request. The slack action reuses the transport.
package webhook
