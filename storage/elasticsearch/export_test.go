package elasticsearch

// SetMaxBulkBytes sets the largest _bulk request and returns a function
// restoring it. Tests calling it must not run in parallel.
func SetMaxBulkBytes(n int) (restore func()) {
	old := maxBulkBytes
	maxBulkBytes = n
	return func() { maxBulkBytes = old }
}
