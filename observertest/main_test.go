package observertest_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// binary is the fraiseql-observers binary, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "observertest-")
	if err != nil {
		panic(err)
	}
	binary, err = observertest.BuildBinary(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%+v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// failureTB stands in for a test to show that a helper fails it: Fatalf
// records the message and ends the goroutine, as testing.T does.
type failureTB struct {
	testing.TB // the real test: Cleanup, TempDir, ... go to it

	mu   sync.Mutex
	msgs []string
}

func (f *failureTB) Helper() {}

func (f *failureTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

// fatal runs fn with a failureTB and returns what it failed with ("" when
// it did not fail).
func fatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &failureTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}
