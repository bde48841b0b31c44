// Package slack is the Slack action type (type: slack): a message
// rendered from a template, posted to an incoming webhook over the webhook
// transport. The webhook URL's path is a secret and is never shown
// (observers.RedactURLPath).
package slack
