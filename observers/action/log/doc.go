// Package log is the log action type (type: log): one structured log line
// per event at the action's level, on the process's logger.
package log
