//go:build !faultinject

package main

import "context"

// faultBeforeCommit is nil in normal builds; see fault_inject.go.
func faultBeforeCommit() func(context.Context, int) error { return nil }
