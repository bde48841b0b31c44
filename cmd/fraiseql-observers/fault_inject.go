//go:build faultinject

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// faultBeforeCommit, in builds tagged faultinject (tests only), kills the
// process inside enqueue transaction number $FRAISEQL_OBSERVERS_CRASH_IN_BATCH,
// after its jobs are inserted and before the checkpoint commits.
func faultBeforeCommit() func(context.Context, int) error {
	n, err := strconv.Atoi(os.Getenv("FRAISEQL_OBSERVERS_CRASH_IN_BATCH"))
	if err != nil || n <= 0 {
		return nil
	}
	return func(_ context.Context, batch int) error {
		if batch == n {
			fmt.Fprintf(os.Stderr, "fault injection: exiting inside enqueue transaction %d\n", batch)
			os.Exit(75)
		}
		return nil
	}
}
