// Package observers is the domain of fraiseql-observers: the change events
// read from the change log (Event, Kind, the delivery Envelope), the
// observer configuration and its one loading pipeline (LoadConfig: the
// YAML file and FraiseQL's tb_observer rows, decoded with file:line:col
// diagnostics and hints), conditions, templates and matching (Config.Match),
// and the contract of an action type: the ActionType plug-in interface and
// its registry, the ActionBlock through which a type decodes its block, and
// the Delivery and Env an Action runs with, with its outcomes
// (DeliveryError, SnoozeError, ErrCached).
//
// It knows no action type (they live in observers/action/<type> and
// register themselves), no River table and no Redis or Elasticsearch
// client. The packages under it own one thing each: changelog (reading the
// change log), listener (leader election and the enqueue transaction),
// breaker (circuit breakers), resultcache, status.
package observers
