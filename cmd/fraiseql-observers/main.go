package main

import (
	"os"
	"runtime/debug"
)

// gcPercentDefault applies unless GOGC is set: the delivery path allocates
// per job, and at 300 the throughput benchmark spends ~10% less CPU for ~30
// MiB more peak RSS (BENCHMARKS.md).
const gcPercentDefault = 300

// memoryLimitDefault is the soft memory limit unless GOMEMLIMIT is set: the
// collector keeps GOGC's pace below it and works harder near it, so a burst
// of large changes (each decoded event takes several times its JSON) does
// not take the heap to four times what is live. It never fails an
// allocation; set GOMEMLIMIT to size it to the host (BENCHMARKS.md).
const memoryLimitDefault = 768 << 20

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentDefault)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimitDefault)
	}
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}
