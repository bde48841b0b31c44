// Package listener is the reading half of the pipeline. Every instance runs
// a Listener; the one holding its group's advisory lock leads: it reads the
// change log and, in the one transaction the delivery guarantee rests on,
// locks the checkpoint, matches and deduplicates the events, hands the jobs
// to an Enqueuer (implemented by package river) and advances the
// checkpoint. It also heartbeats into observer_listeners and owns the
// listener metrics (events, batches, leadership, checkpoint, dedup).
package listener
