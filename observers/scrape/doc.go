// Package scrape reads the /metrics page of every running instance of
// fraiseql-observers and combines them, for `fraiseql-observers metrics`.
// Discover finds the instances in observer_listeners (each heartbeat
// records its admin address); Scrape fetches and parses their pages
// (Prometheus's expfmt); Combine adds counters up across instances (and the
// buckets, counts and sums of histograms and summaries), keeps gauges per
// instance (an instance label), and reports the database-wide gauges
// (DatabaseWide) once.
package scrape
