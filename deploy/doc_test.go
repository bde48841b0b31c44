// Package deploy holds only tests: they check the monitoring this folder
// ships (prometheus/alerts.yml, grafana/fraiseql-observers.json) against
// the metrics the binary registers, and against a real Prometheus.
package deploy
